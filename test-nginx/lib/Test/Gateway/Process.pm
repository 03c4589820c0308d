package Test::Gateway::Process;

# What the plain Test::More suites that run nginx themselves (start it, reload it, stop it)
# share: free ports, process checks, an orderly stop, and file helpers.

use strict;
use warnings;
use Exporter 'import';
use IO::Socket::INET ();
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw(free_port alive wait_for_exit stop_pid slurp write_file);

# A port free on 127.0.0.1 among the $span ports after TEST_NGINX_PORT (default 1984).
sub free_port {
    my ($span) = @_;
    $span ||= 50;
    my $base = $ENV{TEST_NGINX_PORT} || 1984;
    for my $port ($base + 1 .. $base + $span) {
        my $probe = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1', LocalPort => $port, Proto => 'tcp', ReuseAddr => 1, Listen => 1);
        next unless $probe;
        close $probe;
        return $port;
    }
    die "no free port in " . ($base + 1) . ".." . ($base + $span) . "\n";
}

# Whether $pid runs; a zombie (a daemon's, not reaped by us) counts as gone.
sub alive {
    my $pid = shift;
    return 0 unless defined $pid && $pid =~ /^\d+$/ && kill 0, $pid;
    open my $in, '<', "/proc/$pid/stat" or return 1;
    return (<$in> // '') !~ /\)\s+Z/;
}

# Waits up to $secs for $pid to be gone; true if it is.
sub wait_for_exit {
    my ($pid, $secs) = @_;
    my $deadline = time + $secs;
    while (alive($pid)) {
        return 0 if time > $deadline;
        sleep 0.02;
    }
    return 1;
}

# Stops the nginx master $pid: graceful QUIT, then TERM, then KILL of its process group.
# Returns 'gone' (it had exited), 'stopped' (it quit on QUIT), 'terminated' (a worker did
# not quit within 10 s times $patience, kept by a request that never ended: TERM ended it)
# or 'killed'. $patience (default 1) stretches the wait for a slow nginx, as under valgrind,
# whose processes check their heap as they exit.
#
# QUIT is sent again every 2 s until then. Under valgrind a signal that arrives while nginx
# runs is delivered only at its next blocking system call: when that is an epoll_wait with
# no timer pending, nginx sleeps there with its quit flag set, until a second signal wakes
# it. A worker that is already shutting down takes a repeated QUIT as nothing new.
sub stop_pid {
    my ($pid, $patience) = @_;
    return 'gone' unless alive($pid);
    my $deadline = time + 10 * ($patience // 1);
    while (time < $deadline) {
        kill QUIT => $pid;
        return 'stopped' if wait_for_exit($pid, 2);
    }
    kill TERM => $pid;
    return 'terminated' if wait_for_exit($pid, 2);
    kill KILL => -$pid, $pid;
    wait_for_exit($pid, 2);
    return 'killed';
}

sub slurp {
    my $path = shift;
    open my $in, '<', $path or return '';
    local $/;
    return <$in> // '';
}

sub write_file {
    my ($path, $content) = @_;
    open my $out, '>', $path or die "cannot write $path: $!";
    binmode $out;
    print $out $content;
    close $out or die "cannot write $path: $!";
}

1;
