# Reloads and graceful stops with apps in the worker: `nginx -s reload` serves a swapped app
# library (overwritten in place or renamed over) and keeps serving an unchanged one;
# requests in flight during a reload finish on the old worker with the old app code, even
# after the library file was overwritten under it; `nginx -s quit` lets an offloaded call
# in flight finish before nginx exits.
#
# nginx runs with a master process (a reload is the master's job) and one worker. A plain
# Test::More script: it uses the Test::Nginx environment (TEST_NGINX_BINARY,
# TEST_NGINX_LOAD_MODULES, TEST_NGINX_APPS, TEST_NGINX_PORT) but writes its own nginx.conf
# into a temporary prefix, starts nginx itself (listening on 127.0.0.1 only), and always
# stops it.
use strict;
use warnings;
use Test::More;
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use IO::Select ();
use IO::Socket::INET ();
use POSIX ();
use Time::HiRes qw(sleep time);
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Gateway::Process qw(free_port alive wait_for_exit slurp write_file stop_pid);

my $nginx = $ENV{TEST_NGINX_BINARY} || 'nginx';
my $apps = $ENV{TEST_NGINX_APPS} or plan skip_all => 'TEST_NGINX_APPS is not set';
my @modules = split ' ', $ENV{TEST_NGINX_LOAD_MODULES} || '';

# --- nginx ----------------------------------------------------------------------------

my $prefix = tempdir('gateway-017-XXXXXX', TMPDIR => 1, CLEANUP => 1);
mkdir "$prefix/$_" for qw(conf logs);
my $log = "$prefix/logs/error.log";
my $master;    # the master's pid while nginx runs

END {
    local $?;
    stop_nginx() if $master;
}

my $port = free_port();

# Runs nginx's command line with @args; returns its wait status and stderr.
sub nginx_command {
    my @args = @_;
    my $stderr = "$prefix/logs/stderr";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', $stderr;
        { exec { $nginx } $nginx, '-p', "$prefix/", '-c', 'conf/nginx.conf', @args }
        print STDERR "cannot execute $nginx: $!\n";
        POSIX::_exit(127);
    }
    my $deadline = time + 10;
    until (waitpid($pid, POSIX::WNOHANG()) == $pid) {
        if (time > $deadline) {
            kill KILL => $pid;
            waitpid $pid, 0;
            return (-1, "nginx @args did not return within 10 s");
        }
        sleep 0.01;
    }
    return ($?, slurp($stderr));
}

sub stop_nginx {
    my $pid = $master;
    undef $master;
    return stop_pid($pid);
}

# --- clients --------------------------------------------------------------------------

# Sends GET $uri on a new HTTP/1.0 connection; read_response reads the answer.
sub send_request {
    my $uri = shift;
    my $sock = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 5)
        or return { uri => $uri, error => "connect: $!" };
    binmode $sock;
    my $sent = time;
    syswrite $sock, "GET $uri HTTP/1.0\r\nHost: localhost\r\n\r\n";
    return { uri => $uri, sock => $sock, sent => $sent };
}

# Reads the response until nginx closes the connection (HTTP/1.0), for up to $limit s.
# Fills in status, body, took (seconds from sending) and received (the time it came).
sub read_response {
    my ($c, $limit) = @_;
    my $sock = delete $c->{sock} or return $c;
    my ($raw, $select) = ('', IO::Select->new($sock));
    my $deadline = time + ($limit // 10);
    while (1) {
        my $left = $deadline - time;
        if ($left <= 0 || !$select->can_read($left)) {
            $c->{error} = "no end of the response within ${\($limit // 10)} s";
            last;
        }
        my $n = sysread $sock, my $buf, 65536;
        last unless $n;
        $raw .= $buf;
    }
    close $sock;
    $c->{received} = time;
    $c->{took} = $c->{received} - $c->{sent};
    @$c{qw(status body)} = $raw =~ m{\AHTTP/1\.\d (\d{3})[^\r]*\r\n.*?\r\n\r\n(.*)\z}s
        ? ($1, $2) : ('none', $raw);
    return $c;
}

sub get {
    my $uri = shift;
    my $c = read_response(send_request($uri));
    return defined $c->{error} ? "($c->{error}) $c->{status} $c->{body}" : "$c->{status} $c->{body}";
}

sub worker_pid {
    my $answer = get('/pid');
    return $answer =~ /^200 (\d+)$/ ? $1 : "none ($answer)";
}

# `nginx -s reload`, then waits until a new worker answers instead of $old and $old no longer
# accepts connections. Returns the new worker's pid, or a reason.
sub reload {
    my $old = shift;
    my ($status, $stderr) = nginx_command('-s', 'reload');
    return "nginx -s reload failed (status $status): $stderr" if $status;
    my $deadline = time + 10;
    my $new;
    while (time < $deadline) {
        my $pid = worker_pid();
        if ($pid =~ /^\d+$/ && $pid ne $old) {
            $new = $pid;
            last;
        }
        sleep 0.05;
    }
    return "no new worker answered within 10 s of the reload (still $old)" unless $new;
    # The master starts the new worker, then (100 ms later) tells the old one to shut down;
    # until the old one has closed its listening sockets, it may still take a connection.
    # It logs this right before closing them.
    while (alive($old) && slurp($log) !~ /\] $old#\d+: gracefully shutting down$/m) {
        return "the old worker $old did not begin to shut down within 10 s of the reload"
            if time > $deadline;
        sleep 0.05;
    }
    return $new;
}

# --- the server -----------------------------------------------------------------------

# The app libraries the locations mount are copies the test swaps.
copy("$apps/libhello.so", "$prefix/app.so") or die "copy: $!";
copy("$apps/libstream.so", "$prefix/slow.so") or die "copy: $!";

my $load = join '', map { "load_module $_;\n" } @modules;
# Workers of a root master would otherwise run as "nobody".
my $user = $> == 0 ? "user root;\n" : '';
write_file("$prefix/conf/nginx.conf", <<"CONF");
${load}${user}worker_processes 1;
master_process on;
daemon on;
error_log logs/error.log info;
pid logs/nginx.pid;
events {
    worker_connections 256;
}
http {
    access_log logs/access.log;
    default_type text/plain;
    client_body_temp_path $prefix/body;
    proxy_temp_path $prefix/proxy;
    fastcgi_temp_path $prefix/fastcgi;
    uwsgi_temp_path $prefix/uwsgi;
    scgi_temp_path $prefix/scgi;
    server {
        listen 127.0.0.1:$port;
        # libhello.so, then libraw_response.so (answers "raw ok" to ?ok), then back.
        location /app/ {
            gateway_app $prefix/app.so;
        }
        # libstream.so, overwritten with libhello.so while a call of it runs.
        location /slow/ {
            gateway_app $prefix/slow.so;
            gateway_thread_pool default;
        }
        location /stream/ {
            gateway_app $apps/libstream.so;
            gateway_thread_pool default;
        }
        location = /pid {
            return 200 "\$pid";
        }
    }
}
CONF

{
    my ($status, $stderr) = nginx_command();
    die "nginx failed to start (status $status): $stderr" if $status;
    my $deadline = time + 10;
    until (($master = slurp("$prefix/logs/nginx.pid")) =~ s/^(\d+)\n?\z/$1/) {
        die "nginx wrote no pid file\n" if time > $deadline;
        sleep 0.01;
    }
}

my $worker = worker_pid();
like $worker, qr/^\d+$/, "a worker answers: $worker";

subtest 'a library overwritten in place: the old code until the reload, the new one after' => sub {
    is get('/app/x?ok'), "200 Hello, World!\n", 'hello serves';
    my $inode = (stat "$prefix/app.so")[1];
    # Overwritten, not replaced: the same file now holds the other library. The worker
    # runs a private copy of what it loaded, so this changes nothing until a reload.
    write_file("$prefix/app.so", slurp("$apps/libraw_response.so"));
    is((stat "$prefix/app.so")[1], $inode, 'the file was overwritten in place (same inode)');
    is get('/app/x?ok'), "200 Hello, World!\n", 'before the reload: still hello';
    is worker_pid(), $worker, '... from the same worker';

    my $old = $worker;
    $worker = reload($old);
    like $worker, qr/^\d+$/, "a new worker after the reload: $worker";
    ok wait_for_exit($old, 10), "the old worker $old exited";
    is get('/app/x?ok'), "200 raw ok\n", 'after the reload: the new library answers';
    like slurp($log), qr/gateway: app "raw-response" ready from "\Q$prefix\E\/app\.so"/,
        'the new worker reports the new app from the same path';
};

subtest 'a library renamed over the old one: served after the reload' => sub {
    copy("$apps/libhello.so", "$prefix/app.so.new") or die "copy: $!";
    rename "$prefix/app.so.new", "$prefix/app.so" or die "rename: $!";
    is get('/app/x?ok'), "200 raw ok\n", 'before the reload: still the library loaded';
    my $old = $worker;
    $worker = reload($old);
    like $worker, qr/^\d+$/, "a new worker after the reload: $worker";
    ok wait_for_exit($old, 10), "the old worker $old exited";
    is get('/app/x?ok'), "200 Hello, World!\n", 'after the reload: hello again';
};

subtest 'a reload with nothing changed keeps serving' => sub {
    my $old = $worker;
    $worker = reload($old);
    like $worker, qr/^\d+$/, "a new worker after the reload: $worker";
    ok wait_for_exit($old, 10), "the old worker $old exited";
    is get('/app/x?ok'), "200 Hello, World!\n", 'hello serves' for 1 .. 3;
    is get('/stream/sleep?ms=0'), "200 slept 0 ms on the thread_pool\n", 'and the offloaded location';
};

subtest 'a request in flight during a reload finishes on the old worker with the old code' => sub {
    my $old = $worker;
    my $inflight = send_request('/slow/sleep?ms=3000');
    sleep 0.5;
    # The library the old worker is running a call of is overwritten under it, in place.
    write_file("$prefix/slow.so", slurp("$apps/libhello.so"));
    $worker = reload($old);
    like $worker, qr/^\d+$/, "a new worker after the reload: $worker";
    my $new_code_at = time;
    is get('/slow/sleep?ms=0'), "200 Hello, World!\n", 'new requests get the new code';
    ok alive($old), "the old worker $old is still finishing its request";
    read_response($inflight, 15);
    note sprintf 'in flight: %s %s after %.3f s%s', $inflight->{status}, $inflight->{body},
        $inflight->{took} // -1, $inflight->{error} ? " ($inflight->{error})" : '';
    is "$inflight->{status} $inflight->{body}", "200 slept 3000 ms on the thread_pool\n",
        'the request in flight completes with the old code\'s answer';
    cmp_ok $inflight->{received} // 0, '>', $new_code_at,
        '... after the new worker was already serving';
    ok wait_for_exit($old, 10), "then the old worker $old exited";
};

subtest 'nginx -s quit lets an offloaded call in flight finish' => sub {
    my $inflight = send_request('/stream/sleep?ms=3000');
    sleep 0.5;
    my ($status, $stderr) = nginx_command('-s', 'quit');
    is $status, 0, 'nginx -s quit' or diag $stderr;
    read_response($inflight, 15);
    note sprintf 'in flight: %s %s after %.3f s%s', $inflight->{status}, $inflight->{body},
        $inflight->{took} // -1, $inflight->{error} ? " ($inflight->{error})" : '';
    is "$inflight->{status} $inflight->{body}", "200 slept 3000 ms on the thread_pool\n",
        'the call in flight completes';
    cmp_ok $inflight->{took} // 0, '>=', 3, '... after its full 3 s';
    my $pid = $master;
    ok wait_for_exit($pid, 10), 'then nginx exits';
    undef $master unless alive($pid);
};

my @bad = grep { /\[(?:alert|crit|emerg)\]|exited on signal|gateway: [\w ]+ panicked:/ } split /^/, slurp($log);
is_deeply \@bad, [], 'no [alert], [crit], crash or module panic in the error log';
is_deeply [grep { /\[error\]/ } split /^/, slurp($log)], [], 'no [error] either';
diag "error log:\n" . slurp($log) unless Test::More->builder->is_passing;

done_testing;
