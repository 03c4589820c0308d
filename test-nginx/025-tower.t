# gateway::tower_app!: an axum Router (examples/tower-hello) served in-process on a tokio
# runtime per worker, its futures first polled on nginx's loop and, once they wait, completing
# their calls from the runtime's threads (ABI 1.1 deferred completion): a hello; 2,000 concurrent sleeping requests on one worker, answered together
# in about a second while an inline SDK location answers at once (026-tower-load.t: 10,000,
# and 1 GiB to a slow client in bounded memory); streamed bodies (Body::from_stream, SSE), in
# pieces and pulled as the client drains; futures and streams dropped promptly when the
# client resets or gateway_timeout passes; a panic in a handler is a 500, in a stream a
# response cut short, logged with the request id, the worker living on; `tracing` events in
# nginx's error log at nginx's levels, naming the app and the request; the environ
# extension; request bodies from memory and from a temp file.
#
# A plain Test::More script on Test::Gateway::Server (see 020-deferred.t). Timing bounds are
# loose on purpose (CI has two slow cores) and scale with patience().
use strict;
use warnings;
use Test::More;
use List::Util qw(max min);
use IO::Select ();
use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_RCVBUF inet_aton pack_sockaddr_in);
use Time::HiRes qw(sleep time);
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Gateway::Server qw(
    apps_dir patience under_valgrind fd_limit start_nginx worker_pids thread_count log_lines
    access_lines finish run_clients get read_response describe wait_until
);

my $apps = apps_dir() or plan skip_all => 'TEST_NGINX_APPS is not set';
my $tower = "$apps/libtower_hello.so";
plan skip_all => "$tower is not built" unless -f $tower;

# 2,000 concurrent clients need as many sockets here and in the worker (see 020-deferred.t).
BEGIN {
    if (!$ENV{GATEWAY_025_ULIMIT} && Test::Gateway::Server::fd_limit() < 2400) {
        $ENV{GATEWAY_025_ULIMIT} = 1;
        exec '/bin/sh', '-c', 'ulimit -S -n 2400 2>/dev/null; exec "$@"', 'sh', $^X, $0, @ARGV;
    }
}

my $hex32 = qr/[0-9a-f]{32}/;
my $k = patience();

my $locations = <<"CONF";
        location /t/ {
            gateway_app $tower;
            gateway_param GREETING hi-there;
            client_body_buffer_size 16k;
            client_max_body_size 4m;
        }
        location /tt/ {
            gateway_app $tower;
            gateway_timeout 100ms;
        }
        location /h/ {
            gateway_app $apps/libhello.so;
        }
        location = /pid {
            return 200 "\$pid\\n";
        }
CONF

sub server { start_nginx(name => 'gateway-025', server => $locations, @_) }

sub drops {
    my $server = shift;
    my $c = get($server, '/t/drops');
    return $c->{body} =~ /^(\d+)$/ ? $1 : -1;
}

# POSTs $body to $uri on a connection of its own; the response, as run_clients gives it.
sub post {
    my ($server, $uri, $body) = @_;
    socket my $sock, PF_INET, SOCK_STREAM, 0 or die "socket: $!";
    connect $sock, pack_sockaddr_in($server->{port}, inet_aton('127.0.0.1')) or die "connect: $!";
    binmode $sock;
    my $c = { uri => $uri, raw => '', sent => 0, start => time, sock => $sock };
    my $request = "POST $uri HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n"
        . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
    while (length $request) {
        my $n = syswrite $sock, $request or die "write: $!";
        substr $request, 0, $n, '';
    }
    return read_response($c);
}

# GETs $uri and notes when each piece of the body arrived (seconds from sending). Option:
# rcvbuf => bytes, the socket's receive buffer.
sub timed_get {
    my ($server, $uri, %o) = @_;
    socket my $sock, PF_INET, SOCK_STREAM, 0 or die "socket: $!";
    setsockopt $sock, SOL_SOCKET, SO_RCVBUF, $o{rcvbuf} or die "SO_RCVBUF: $!" if $o{rcvbuf};
    connect $sock, pack_sockaddr_in($server->{port}, inet_aton('127.0.0.1')) or die "connect: $!";
    my $start = time;
    syswrite $sock, "GET $uri HTTP/1.0\r\nHost: localhost\r\n\r\n";
    my ($raw, @pieces) = ('');
    my $select = IO::Select->new($sock);
    while ($select->can_read(10 * $k)) {
        my $n = sysread $sock, my $buf, 65536;
        last unless $n;
        $raw .= $buf;
        push @pieces, [time - $start, $buf];
    }
    close $sock;
    my ($status, $head, $body) = $raw =~ m{\AHTTP/1\.\d (\d+)[^\n]*\n(.*?)\r\n\r\n(.*)\z}s;
    return { status => $status // 'none', head => $head // '', body => $body // '', pieces => \@pieces,
             done => time - $start };
}

subtest 'hello, the environ extension, a panic, request bodies' => sub {
    my $server = server();
    my ($worker) = worker_pids($server);
    my $c = get($server, '/t/hello');
    is "$c->{status} $c->{body}", "200 Hello from axum!\n", '/t/hello: the Router answered';

    $c = get($server, '/t/threads');
    is "$c->{status} $c->{body}", "200 main then tower-hello-tokio\n",
        'a future is first polled on nginx\'s loop, and goes to the runtime once it waits';

    $c = get($server, '/t/environ?x=1', 'X-Foo: bar');
    is $c->{status}, 200, '/t/environ: 200';
    my ($entry) = access_lines($server, qr{ /t/environ\?x=1$});
    my ($id) = ($entry // '') =~ /^($hex32) 200 /;
    ok $id, 'the access log has its $request_id';
    like $c->{body}, qr/"script_name":"\/t"/, 'SCRIPT_NAME is the mount point';
    like $c->{body}, qr/"request_id":"$id"/, 'the request id is the access log\'s' if $id;
    like $c->{body}, qr/"greeting_param":"hi-there"/, 'a gateway_param reaches the environ';
    like $c->{body}, qr/"uri":"\/environ\?x=1"/, 'the URI is the path below the mount point, with the query';
    like $c->{body}, qr/"x_foo":"bar"/, 'HTTP_X_FOO is the x-foo header again';
    like $c->{body}, qr/"remote_addr":"127\.0\.0\.1"/, 'REMOTE_ADDR';

    $c = get($server, '/t/panic');
    is $c->{status}, 500, '/t/panic: 500';
    ($entry) = access_lines($server, qr{ /t/panic$});
    ($id) = ($entry // '') =~ /^($hex32) 500 /;
    my @panics = log_lines($server, qr/\[error\] .*app "tower-hello".*handler panicked at .*boom from axum/);
    is scalar @panics, 1, 'the panic is one [error] line, with where it happened' or diag @panics;
    like $panics[0] // '', qr/$id/, '... naming the request' if $id;
    is get($server, '/t/hello')->{status}, 200, 'the location serves on';
    is_deeply [worker_pids($server)], [$worker], 'in the same worker';

    my $small = join '', map { chr(32 + $_ % 90) } 1 .. 1000;
    $c = post($server, '/t/echo', $small);
    ok $c->{status} eq '200' && $c->{body} eq $small, 'POST /t/echo: 1,000 bytes from memory come back'
        or diag describe($c);
    my $large = join '', map { pack 'N', $_ * 2654435761 % 4294967296 } 1 .. 262144;    # 1 MiB
    $c = post($server, '/t/echo', $large);
    is $c->{status}, 200, 'POST /t/echo: 1 MiB, spilled to a temp file (client_body_buffer_size 16k)';
    ok $c->{body} eq $large, '... comes back whole' or diag 'got ' . length($c->{body}) . ' bytes';
    is scalar(log_lines($server, qr/a client request body is buffered to a temporary file/)), 1,
        '... nginx did spill it';
    finish($server, 'hello', ok => qr/handler panicked at/);
};

subtest 'tracing: events in the error log at nginx\'s levels, naming the app and the request' => sub {
    my $server = server();
    my $c = get($server, '/t/trace');
    is "$c->{status} $c->{body}", "200 traced\n", '/t/trace: 200';
    # Both locations' instances said so at init (over before the worker serves), naming the
    # app but no request.
    my @ready = log_lines($server, qr/\[info\] .*gateway: app "tower-hello" tower_hello: ready greeting="Hello from axum!"$/);
    is scalar @ready, 2, 'init: one [info] line per instance' or diag log_lines($server, qr/ready/);
    my ($entry) = access_lines($server, qr{ /t/trace$});
    my ($id) = ($entry // '') =~ /^($hex32) 200 /;
    ok $id, 'the access log has its $request_id';
    my $app = qr/gateway: app "tower-hello" tower_hello:/;
    is scalar(log_lines($server, qr/\[error\] .*$app an error event code=7 \(request $id\)$/)), 1,
        'ERROR: an [error] line with its fields and the request id';
    is scalar(log_lines($server, qr/\[warn\] .*$app a warning \(request $id\)$/)), 1, 'WARN: [warn]';
    is scalar(log_lines($server, qr/\[info\] .*gateway: app "tower-hello" work\{step=1\}: tower_hello: done rows=3 \(request $id\)$/)), 1,
        'INFO: [info], inside its span';
    is scalar(log_lines($server, qr/detail, below|finer still/)), 0,
        'DEBUG and TRACE: not logged (tracing_level info, and nginx\'s error_log info)';
    is scalar(log_lines($server, qr/\[info\] .*$app from a spawned task$/)), 1,
        'a task the handler spawned: the app, no request';
    is scalar(log_lines($server, qr/request $id\)$/)), 3, 'the request\'s own lines name it, and only they';

    $c = get($server, '/t/sse?n=1&ms=10');
    ($entry) = access_lines($server, qr{ /t/sse\?n=1&ms=10$});
    ($id) = ($entry // '') =~ /^($hex32) 200 /;
    is scalar(log_lines($server, qr/\[info\] .*$app events start n=1 ms=10 \(request $id\)$/)), 1,
        'an event from the handler of a streamed response names the request';
    finish($server, 'tracing');
};

subtest '2,000 concurrent sleeps on one worker, an inline location answering meanwhile' => sub {
    my $limit = fd_limit();
    my $n = min(2000, $limit - 300);
    $n = 300 if under_valgrind() && $n > 300;
    note "fd limit $limit: $n concurrent calls";
    my $server = server(connections => $n + 200, listen => 'backlog=4096', events => '    multi_accept on;');
    my ($worker) = worker_pids($server);
    get($server, '/t/hello');    # the runtime is up
    my $before = thread_count($worker);
    my $during;
    my @clients = run_clients($server, [
        (map { [0, '/t/sleep?ms=1000'] } 1 .. $n),
        # Not scaled by patience: it must go while the sleeps are pending, valgrind or not.
        [0.3, sub { $during = thread_count($worker) }],
        [0.3, '/h/'],
    ], limit => 20 * $k);
    my $inline = pop @clients;
    note sprintf 'sent within %.3f s', max(map { $_->{sent} // 0 } @clients);
    my @wrong = grep { "$_->{status} $_->{body}" ne "200 slept 1000 ms\n" } @clients;
    is scalar @wrong, 0, "all $n sleeps answered 200"
        or diag join "\n", map { describe($_) } @wrong[0 .. min(9, $#wrong)];
    my $last = max(map { $_->{finished} // 99 } @clients);
    cmp_ok $last, '<', 4 * $k, sprintf 'all within 4 s of the first send (the last at %.2f s)', $last;
    cmp_ok min(map { $_->{done} // 0 } @clients), '>=', 1, 'none before its second';
    note describe($inline);
    is "$inline->{status} $inline->{body}", "200 Hello, World!\n", 'the inline SDK location answered meanwhile';
    cmp_ok $inline->{done} // 99, '<', 0.2 * $k, sprintf '... at once (%.3f s)', $inline->{done} // -1;
    cmp_ok $inline->{finished} // 99, '<', min(map { $_->{finished} // 0 } @clients), '... before any sleep ended';
    cmp_ok $during // 999, '<=', $before + 1, "no thread per request ($before before, " . ($during // '?') . ' during)';
    finish($server, 'concurrent sleeps');
};

subtest 'streamed bodies: in pieces, server-sent events, a panic cuts one short' => sub {
    my $server = server(connections => 64);
    my ($worker) = worker_pids($server);
    my $c = timed_get($server, '/t/stream?n=5&ms=200');
    is $c->{status}, 200, '/t/stream?n=5&ms=200: 200';
    is $c->{body}, join('', map { "chunk $_\n" } 0 .. 4), '... the five chunks, whole, in order';
    my @body_at = map { $_->[0] } grep { $_->[1] =~ /chunk/ } @{ $c->{pieces} };
    cmp_ok scalar @body_at, '>=', 3, sprintf 'in pieces (%d reads)', scalar @body_at;
    cmp_ok $body_at[0] // 99, '<', 0.6 * $k, sprintf '... the first chunk early (%.3f s)', $body_at[0] // -1;
    cmp_ok $c->{done}, '>=', 0.9, sprintf '... the last after its timers (%.3f s)', $c->{done};

    # 16 MiB at once, through a 16 KiB receive buffer: pulled as the client drains
    # (026-tower-load.t measures memory with 1 GiB).
    $c = timed_get($server, '/t/stream?n=256&size=65536', rcvbuf => 16384);
    is $c->{status}, 200, '/t/stream?n=256&size=65536: 200';
    is length $c->{body}, 256 * 65536, '... 16 MiB';
    my $letters = join('', 'a' .. 'z') x 2522;    # 65,572 bytes: any chunk from any letter
    my @wrong = grep { substr($c->{body}, 65536 * $_, 65536) ne substr($letters, $_ % 26, 65536) } 0 .. 255;
    is scalar @wrong, 0, '... every chunk right' or diag "wrong chunks: @wrong[0 .. min(9, $#wrong)]";

    $c = timed_get($server, '/t/sse?n=3&ms=200');
    is $c->{status}, 200, '/t/sse?n=3&ms=200 (axum Sse): 200';
    like $c->{head}, qr{^Content-Type: text/event-stream\r?$}mi, '... text/event-stream';
    is $c->{body}, join('', map { "event: tick\ndata: $_\n\n" } 0 .. 2), '... three events, in order';
    my @events_at = map { $_->[0] } grep { $_->[1] =~ /event: tick/ } @{ $c->{pieces} };
    cmp_ok scalar @events_at, '>=', 2, sprintf '... as they happen (%d reads)', scalar @events_at;
    cmp_ok $events_at[0] // 99, '<', 0.5 * $k, sprintf '... the first one early (%.3f s)', $events_at[0] // -1;

    $c = timed_get($server, '/t/stream?n=5&ms=50&panic_at=3');
    is $c->{status}, 200, '/t/stream?...&panic_at=3: 200, its headers sent before the panic';
    is $c->{body}, join('', map { "chunk $_\n" } 0 .. 2), '... cut short after chunk 2';
    my ($entry) = access_lines($server, qr{ /t/stream\?n=5&ms=50&panic_at=3$});
    my ($id) = ($entry // '') =~ /^($hex32) /;
    my @panics = log_lines($server,
        qr/\[error\] .*app "tower-hello" stream failed after 24 bytes, the response is cut short: stream panicked at .*stream boom at chunk 3 \(request $id\), client: /);
    is scalar @panics, 1, '... one [error] line: the panic, where, and the request id'
        or diag log_lines($server, qr/boom/);
    is get($server, '/t/hello')->{status}, 200, 'the location serves on';
    is_deeply [worker_pids($server)], [$worker], 'in the same worker';
    finish($server, 'streams', ok => qr/stream panicked at/);
};

subtest 'cancellation: a client that resets, gateway_timeout: the future is dropped' => sub {
    my $server = server();
    my $start = drops($server);
    my @clients = run_clients($server, [
        [0, '/t/sleep?ms=5000', reset_after => 0.3],
        [0, '/t/stream?n=100&ms=100', reset_after => 0.5],
        [0, '/t/sse?n=100&ms=100', reset_after => 0.5],
    ], limit => 10 * $k);
    note describe($_) for @clients;
    my $t0 = time;
    my $dropped = wait_until(2 * $k, sub { drops($server) >= $start + 3 });
    ok $dropped, sprintf 'the sleeping future and both streams were dropped (%d), %.2f s after the resets',
        drops($server) - $start, time - $t0;

    $start = drops($server);
    my ($c) = run_clients($server, [[0, '/tt/sleep?ms=1000']]);
    note describe($c);
    is $c->{status}, 504, 'gateway_timeout 100ms on /tt/sleep?ms=1000: 504';
    cmp_ok $c->{done} // 99, '<', 0.8, sprintf '... at its deadline (%.3f s)', $c->{done} // -1;
    ok wait_until(0.5 * $k, sub { drops($server) == $start + 1 }), '... and the future dropped at once, not at its end';
    is get($server, '/tt/hello')->{status}, 200, 'the location serves on';
    finish($server, 'cancellation');
};

done_testing;
