package Test::Gateway::Server;

# What the plain Test::More suites that run their own nginx share: a config written into a
# fresh prefix, nginx started, checked (nginx -t), reloaded and stopped, the error and access
# logs read, the worker's pid and threads, concurrent raw-socket clients (which can also
# reset their connection at a given moment), a request sent now and read later, and the
# end-of-section checks.
#
# It reads the Test::Nginx environment: TEST_NGINX_BINARY, TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_APPS, TEST_NGINX_PORT, and TEST_NGINX_TIMEOUT, which scripts/test-valgrind
# sets to 60: waits scale with it (see patience).
#
# Every server started is stopped at exit, whatever happened.

use strict;
use warnings;
use Exporter 'import';
use File::Temp qw(tempdir);
use IO::Select ();
use List::Util qw(min);
use POSIX ();
use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_LINGER inet_aton pack_sockaddr_in);
use Test::More ();
use Time::HiRes qw(sleep time);
use Test::Gateway::Process qw(alive free_port slurp stop_pid write_file);

our @EXPORT_OK = qw(
    nginx_binary nginx_version apps_dir patience under_valgrind fd_limit
    write_conf rewrite_conf line_of launch nginx_t start_nginx stop_nginx reload pid_from_file
    worker_pids thread_count log_lines access_lines bad_log_lines finish
    run_clients get send_request read_response describe wait_until
);

my $nginx = $ENV{TEST_NGINX_BINARY} || 'nginx';
my @modules = split ' ', $ENV{TEST_NGINX_LOAD_MODULES} || '';

sub nginx_binary { $nginx }

# The version of nginx (`nginx -v`) as a list of numbers, e.g. (1, 28, 3); () if it says none.
my @version;
sub nginx_version {
    return @version if @version;
    # nginx -v prints to stderr.
    open my $out, '-|', '/bin/sh', '-c', '"$0" -v 2>&1', $nginx or return ();
    my $text = do { local $/; <$out> } // '';
    close $out;
    @version = $text =~ m{nginx/(\d+)\.(\d+)\.(\d+)};
    return @version;
}

sub apps_dir { $ENV{TEST_NGINX_APPS} }

# Whether nginx runs under valgrind (scripts/test-valgrind's wrapper): some 20 times slower.
sub under_valgrind {
    return $nginx =~ /valgrind/ || ($ENV{TEST_NGINX_TIMEOUT} // 0) >= 30;
}

# How much longer than usual to wait for anything nginx does: 1, or TEST_NGINX_TIMEOUT/10
# when that is larger than 10 s (6 under scripts/test-valgrind).
sub patience {
    my $timeout = $ENV{TEST_NGINX_TIMEOUT} // 10;
    return $timeout > 10 ? $timeout / 10 : 1;
}

# How many files this process may open (the soft RLIMIT_NOFILE), which nginx inherits.
sub fd_limit {
    return POSIX::sysconf(POSIX::_SC_OPEN_MAX()) // 1024;
}

# --- nginx ----------------------------------------------------------------------------

my @running;    # servers to stop, whatever happens

END {
    local $?;
    stop_nginx($_) for @{[@running]};
}

# Writes nginx.conf into a fresh prefix and returns the server's description. Options:
# name (in the prefix's name), main (main context), events (in the events block), http
# (http block), server (server block), listen (after the listen address), master (default
# on), workers (default 1), connections (worker_connections, default 256), log_format (of
# the access log).
#
# The access log's format is by default "$request_id $status $request_uri", so an error
# log line can be matched with its request.
sub write_conf {
    my (%o) = @_;
    my $name = $o{name} // 'gateway';
    my $prefix = tempdir("$name-XXXXXX", TMPDIR => 1, CLEANUP => 1);
    mkdir "$prefix/$_" for qw(conf logs);
    my $server = { prefix => $prefix, port => free_port(), conf => "$prefix/conf/nginx.conf",
                   log => "$prefix/logs/error.log", access => "$prefix/logs/access.log",
                   stderr => "$prefix/logs/stderr" };
    rewrite_conf($server, %o);
    return $server;
}

# Writes the server's nginx.conf anew from the options of write_conf (same prefix and
# port), e.g. for a reload.
sub rewrite_conf {
    my ($server, %o) = @_;
    my ($prefix, $port) = @$server{qw(prefix port)};
    my $load = join '', map { "load_module $_;\n" } @modules;
    # Workers of a root master would otherwise run as "nobody".
    my $user = $> == 0 ? "user root;\n" : '';
    my $master = ($o{master} // 1) ? 'on' : 'off';
    my $workers = $o{workers} // 1;
    my $connections = $o{connections} // 256;
    my ($main, $events, $http) = map { $_ // '' } @o{qw(main events http)};
    my $listen = $o{listen} ? " $o{listen}" : '';
    my $format = $o{log_format} // '$request_id $status $request_uri';
    $server->{text} = <<"CONF";
${load}${user}worker_processes $workers;
master_process $master;
daemon on;
error_log logs/error.log info;
pid logs/nginx.pid;
$main
events {
    worker_connections $connections;
    accept_mutex off;
$events
}
http {
    log_format gateway_test '$format';
    access_log logs/access.log gateway_test;
    default_type text/plain;
    client_body_temp_path $prefix/body;
    proxy_temp_path $prefix/proxy;
    fastcgi_temp_path $prefix/fastcgi;
    uwsgi_temp_path $prefix/uwsgi;
    scgi_temp_path $prefix/scgi;
$http
    server {
        listen 127.0.0.1:$port$listen;
$o{server}
    }
}
CONF
    write_file($server->{conf}, $server->{text});
}

# The line of nginx.conf where $needle first appears.
sub line_of {
    my ($server, $needle) = @_;
    my $at = index $server->{text}, $needle;
    die "\"$needle\" is not in the config\n" if $at < 0;
    return 1 + (() = substr($server->{text}, 0, $at) =~ /\n/g);
}

# Runs nginx's command line with @args (none: start it; it daemonizes and returns); returns
# its wait status and what it printed (stdout and stderr).
sub launch {
    my ($server, @args) = @_;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDOUT, '>', $server->{stderr};
        open STDERR, '>&', \*STDOUT;
        { exec { $nginx } $nginx, '-p', "$server->{prefix}/", '-c', 'conf/nginx.conf', @args }
        print STDERR "cannot execute $nginx: $!\n";
        POSIX::_exit(127);
    }
    my $limit = 10 * patience();
    my $deadline = time + $limit;
    until (waitpid($pid, POSIX::WNOHANG()) == $pid) {
        if (time > $deadline) {
            kill KILL => $pid;
            waitpid $pid, 0;
            return (-1, "nginx @args did not return within $limit s");
        }
        sleep 0.01;
    }
    return ($?, slurp($server->{stderr}));
}

# `nginx -t` on the server's config: its wait status and output.
sub nginx_t {
    my $server = shift;
    return launch($server, '-t');
}

# Writes the config (see write_conf) and starts nginx; dies (failing the script) if it does
# not come up. With a master, also waits for its workers.
sub start_nginx {
    my $server = write_conf(@_);
    my (%o) = @_;
    my ($status, $output) = launch($server);
    die "nginx failed to start (status $status): $output" if $status;
    my $deadline = time + 10 * patience();
    until (defined($server->{pid} = pid_from_file($server))) {
        die "nginx wrote no pid file\n" if time > $deadline;
        sleep 0.01;
    }
    push @running, $server;
    if ($o{master} // 1) {
        my $workers = $o{workers} // 1;
        until ((my @pids = worker_pids($server)) >= $workers) {
            die "nginx started no worker\n" if time > $deadline;
            sleep 0.01;
        }
    }
    return $server;
}

sub pid_from_file {
    my $server = shift;
    my $pid = slurp("$server->{prefix}/logs/nginx.pid");
    return $pid =~ /^(\d+)/ ? $1 : undef;
}

# Stops nginx gracefully (QUIT), then with TERM and KILL if it lingers. Returns 'gone' if
# it had exited on its own, else 'stopped', 'terminated' or 'killed' (see stop_pid).
sub stop_nginx {
    my $server = shift;
    @running = grep { $_ != $server } @running;
    return stop_pid($server->{pid}, patience());
}

# Reloads the configuration: HUP to the master, or with command => 1 `nginx -s reload`
# (which parses the configuration itself first). Then waits up to $o{secs} (default 10,
# times patience) until as many new workers run as there were, and the old ones have
# exited; with in_flight => 1 only until each old one has begun to shut down (it logs so
# right before it closes its listening sockets), for a test whose requests in flight keep
# them. Returns '' or what went wrong.
sub reload {
    my ($server, %o) = @_;
    my @old = worker_pids($server);
    my %old = map { ($_ => 1) } @old;
    if ($o{command}) {
        my ($status, $output) = launch($server, '-s', 'reload');
        return "nginx -s reload failed (status $status): $output" if $status;
    } else {
        kill HUP => $server->{pid};
    }
    my $secs = ($o{secs} // 10) * patience();
    my $deadline = time + $secs;
    while (1) {
        my @new = grep { !$old{$_} } worker_pids($server);
        my $log = $o{in_flight} ? slurp($server->{log}) : '';
        my @still = grep { alive($_) && !($o{in_flight} && $log =~ /\] $_#\d+: gracefully shutting down$/m) } @old;
        return '' if @new >= @old && !@still;
        return "after $secs s: old workers (@old) still running: (@still), new workers: (@new)"
            if time > $deadline;
        sleep 0.05;
    }
}

# The pids of the master's children (its workers: these configs have no cache processes).
sub worker_pids {
    my $server = shift;
    my @pids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $in, '<', $stat or next;
        my $line = <$in> // next;
        # pid (comm) state ppid ...
        push @pids, $1 if $line =~ /^(\d+) \(.*\) (\S) (\d+) / && $3 == $server->{pid} && $2 ne 'Z';
    }
    return sort { $a <=> $b } @pids;
}

# How many threads process $pid has (its /proc status), or undef if it is gone.
sub thread_count {
    my $pid = shift;
    my ($threads) = slurp("/proc/$pid/status") =~ /^Threads:\s*(\d+)/m;
    return $threads;
}

# The error log's lines that match $pattern.
sub log_lines {
    my ($server, $pattern) = @_;
    return grep { /$pattern/ } split /^/, slurp($server->{log});
}

# The access log's lines that match $pattern ("$request_id $status $request_uri").
sub access_lines {
    my ($server, $pattern) = @_;
    return grep { /$pattern/ } split /^/, slurp($server->{access});
}

# The error log's lines that no run should have: an [alert], [crit] or [emerg], a worker
# crash, a Rust panic (the module's guard catching its own, or a thread's message on
# stderr, which a daemon's error log receives), nginx's own request-count check; except
# those matching $ok.
sub bad_log_lines {
    my ($server, $ok) = @_;
    return grep { !$ok || !/$ok/ }
        log_lines($server, qr/\[(?:alert|crit|emerg)\]|exited on signal|panicked|http request count is zero/);
}

# Stops the server and checks what every section checks: nginx was still running, quit
# when asked (QUIT, within 10 s), and nothing crashed, panicked or raised an alert. $o{ok}
# matches error log lines that are expected despite that.
sub finish {
    my ($server, $what, %o) = @_;
    my $how = stop_nginx($server);
    # 'stopped' only if QUIT sufficed: a worker kept from quitting holds a request that never ended.
    Test::More::is($how, 'stopped', "$what: nginx was running to the end and quit when asked");
    my @bad = bad_log_lines($server, $o{ok});
    Test::More::is_deeply(\@bad, [], "$what: no [alert], [crit], crash or panic in the error log");
    Test::More::diag("error log of $what:\n" . slurp($server->{log}))
        unless Test::More->builder->is_passing;
}

# --- clients --------------------------------------------------------------------------

# Sends requests concurrently, each on its own HTTP/1.0 connection. Each request is
# [$at, $uri, %options]: "GET $uri", sent $at seconds after the start; or [$at, $code]:
# $code->() is called once, $at seconds after the start (to look at the worker meanwhile).
# Options: reset_after => S: the client resets the connection (RST: SO_LINGER with a 0
# timeout, then close) S seconds after sending, unless nginx closed it before;
# reset_bytes => N: it resets once it has read N bytes; keepalive => 1: the request is
# HTTP/1.1, so nginx keeps the connection open after the response (a client that resets
# keeps reading until it resets, or nginx closes); headers => [lines]: more header lines.
#
# Returns, in the order of the requests (without the code ones), hashes with status, head,
# headers (by lower-cased name), body, done (seconds from sending to the complete response,
# by its Content-Length, or to nginx closing the connection), finished (the same from the
# start, to compare clients), eof (seconds from sending to nginx closing the connection;
# only with wait_eof, else the client closes once the response is complete), reset
# (seconds from sending to the reset), bytes (how many it read) and error. Run options: limit (seconds for it all, default 30,
# times patience), wait_eof.
sub run_clients {
    my ($server, $requests, %opt) = @_;
    my $limit = $opt{limit} // 30 * patience();
    my $start = time;
    my (@clients, @hooks);
    for my $r (@$requests) {
        my ($at, $what, %o) = @$r;
        if (ref $what eq 'CODE') {
            push @hooks, { at => $at, code => $what };
        } else {
            push @clients, { %o, at => $at, uri => $what, raw => '' };
        }
    }
    # Kept across turns rather than rebuilt: a turn must stay cheap with 2,000 clients.
    my @to_send = sort { $a->{at} <=> $b->{at} } @clients;
    @hooks = sort { $a->{at} <=> $b->{at} } @hooks;
    my $address = pack_sockaddr_in($server->{port}, inet_aton('127.0.0.1'));
    my $select = IO::Select->new;
    my %open;    # fileno => client
    my $close = sub {
        my $c = shift;
        my $sock = delete $c->{sock};
        $select->remove($sock);
        delete $open{fileno $sock};
        return $sock;
    };
    while (1) {
        my $now = time - $start;
        while (@hooks && $hooks[0]{at} <= $now) {
            (shift @hooks)->{code}->();
        }
        $now = time - $start;
        while (@to_send && $to_send[0]{at} <= $now) {
            my $c = shift @to_send;
            # A plain blocking connect: on 127.0.0.1 it returns as soon as the kernel has
            # queued the connection, and IO::Socket's Timeout would cost 0.5 ms a client.
            my $sock;
            if (!socket($sock, PF_INET, SOCK_STREAM, 0) || !connect($sock, $address)) {
                $c->{error} = "connect: $!";
                next;
            }
            binmode $sock;
            # Noted before writing: nginx may start on the request before syswrite returns.
            $c->{sent} = time - $start;
            syswrite $sock, request_text($c);
            $c->{sock} = $sock;
            $select->add($sock);
            $open{fileno $sock} = $c;
        }
        $now = time - $start;
        my @resetting = grep { defined $_->{reset_after} } values %open;
        for my $c (@resetting) {
            reset_client($c, $now - $c->{sent}, $close) if $now - $c->{sent} >= $c->{reset_after};
        }
        last unless %open || @to_send || @hooks;
        if ($now > $limit) {
            $_->{error} //= "no complete response within ${limit} s" for values %open, @to_send;
            last;
        }
        my @next = map { $_->[0]{at} } grep { @$_ } \@to_send, \@hooks;
        push @next, map { $_->{sent} + $_->{reset_after} } grep { defined $_->{reset_after} } values %open;
        my $wait = (@next ? min(@next) : $limit) - $now;
        $wait = 0.001 if $wait < 0.001;
        # Nothing open: only waiting for the next send or hook.
        if (!%open) {
            sleep $wait;
            next;
        }
        for my $fh ($select->can_read($wait)) {
            my $c = $open{fileno $fh} or next;
            my $n = sysread $fh, my $buf, 65536;
            my $t = time - $start - $c->{sent};
            if ($n) {
                $c->{raw} .= $buf;
                if (defined $c->{reset_bytes} && length $c->{raw} >= $c->{reset_bytes}) {
                    reset_client($c, $t, $close);
                    next;
                }
                next if defined $c->{done} || !complete($c);
                $c->{done} = $t;
                $c->{finished} = $c->{sent} + $t;
                next if $opt{wait_eof} || defined $c->{reset_after} || defined $c->{reset_bytes};
            } else {
                $c->{eof} = $t;
                $c->{error} = "read: $!" unless defined $n;
                if (!defined $c->{done} && $c->{raw} =~ /\r\n\r\n/) {
                    $c->{done} = $t;
                    $c->{finished} = $c->{sent} + $t;
                }
            }
            close $close->($c);
        }
    }
    for my $c (@clients) {
        close $close->($c) if $c->{sock};
        $c->{error} //= 'no complete response' unless defined $c->{done} || defined $c->{reset};
        parse_response($c);
    }
    return @clients;
}

# What a client sends: "GET $c->{uri}", HTTP/1.0 or with keepalive 1.1, and its headers.
sub request_text {
    my $c = shift;
    my $version = $c->{keepalive} ? '1.1' : '1.0';
    return join '', map { "$_\r\n" } "GET $c->{uri} HTTP/$version", 'Host: localhost', @{ $c->{headers} // [] }, '';
}

# Fills in bytes, status, head, headers and body from what the client read.
sub parse_response {
    my $c = shift;
    $c->{bytes} = length $c->{raw};
    if ($c->{raw} =~ m{\AHTTP/1\.\d (\d{3})[^\r]*\r\n(.*?)\r\n\r\n(.*)\z}s) {
        @$c{qw(status head body)} = ($1, $2, $3);
        $c->{headers} = { map { /^([^:]+):\s*(.*)$/ ? (lc $1 => $2) : () } split /\r\n/, $2 };
    }
    $c->{status} //= 'none';
    $c->{body} //= '';
    $c->{headers} //= {};
    return $c;
}

# Resets the client's connection: an RST instead of a FIN, as a client that crashed or
# gave up; nginx sees ECONNRESET on its next read or write.
sub reset_client {
    my ($c, $t, $close) = @_;
    my $sock = $close->($c);
    setsockopt($sock, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0)) or die "SO_LINGER: $!";
    close $sock;
    $c->{reset} = $t;
}

# Is the response complete by its Content-Length?
sub complete {
    my $c = shift;
    my ($head, $body) = $c->{raw} =~ /\A(.*?\r\n)\r\n(.*)\z/s or return 0;
    my ($length) = $head =~ /^Content-Length:\s*(\d+)\r$/mi or return 0;
    return length($body) >= $length;
}

# One request (with more header lines, if any); reads until nginx closes the connection,
# so the request is over (its response released) when this returns.
sub get {
    my ($server, $uri, @headers) = @_;
    my ($c) = run_clients($server, [[0, $uri, headers => \@headers]], limit => 10 * patience(), wait_eof => 1);
    return $c;
}

# Sends one request now (GET $uri on an HTTP/1.0 connection, with more header lines, if
# any); read_response reads its answer later, while the test does other things.
sub send_request {
    my ($server, $uri, @headers) = @_;
    my $c = { uri => $uri, headers => \@headers, raw => '', sent => 0 };
    my $address = pack_sockaddr_in($server->{port}, inet_aton('127.0.0.1'));
    my $sock;
    if (!socket($sock, PF_INET, SOCK_STREAM, 0) || !connect($sock, $address)) {
        $c->{error} = "connect: $!";
        return parse_response($c);
    }
    binmode $sock;
    $c->{start} = time;
    syswrite $sock, request_text($c);
    $c->{sock} = $sock;
    return $c;
}

# Reads the answer to send_request until nginx closes the connection, for up to $limit s
# (default 15, times patience). Fills in what run_clients does (done is the time from
# sending to the close), and received: the time() it came.
sub read_response {
    my ($c, $limit) = @_;
    $limit //= 15 * patience();
    my $sock = delete $c->{sock} or return $c;
    my $select = IO::Select->new($sock);
    my $deadline = time + $limit;
    while (1) {
        my $left = $deadline - time;
        if ($left <= 0 || !$select->can_read($left)) {
            $c->{error} = "no end of the response within $limit s";
            last;
        }
        my $n = sysread $sock, my $buf, 65536;
        if (!$n) {
            $c->{error} = "read: $!" unless defined $n;
            $c->{received} = time;
            $c->{done} = $c->{eof} = $c->{received} - $c->{start};
            last;
        }
        $c->{raw} .= $buf;
    }
    close $sock;
    return parse_response($c);
}

# Polls $cond->() every 20 ms until it holds (returns 1) or $secs pass (returns 0).
sub wait_until {
    my ($secs, $cond) = @_;
    my $deadline = time + $secs;
    while (1) {
        return 1 if $cond->();
        return 0 if time > $deadline;
        sleep 0.02;
    }
}

sub describe {
    my $c = shift;
    my $body = $c->{body};
    $body = substr($body, 0, 60) . '...' if length $body > 60;
    $body =~ s/\n/\\n/g;
    return sprintf '%s sent at %.3f s: %s "%s" (%d bytes) after %s s%s%s%s', $c->{uri}, $c->{sent} // -1,
        $c->{status}, $body, $c->{bytes} // 0,
        defined $c->{done} ? sprintf('%.3f', $c->{done}) : '-',
        defined $c->{eof} ? sprintf(', closed after %.3f s', $c->{eof}) : '',
        defined $c->{reset} ? sprintf(', reset after %.3f s', $c->{reset}) : '',
        $c->{error} ? " ($c->{error})" : '';
}

1;
