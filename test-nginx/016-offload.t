# App calls on nginx thread pools (gateway_thread_pool, gateway_timeout): slow calls run in
# parallel on the pool's threads while the worker's event loop goes on serving; without
# offload the same calls stall the worker, which is why the feature exists. A full queue
# is a 503, a deadline a 504 with the call finishing detached, a panic on a thread a 500,
# and bad directives stop nginx from starting.
#
# Concurrency needs several connections at once, which the Test::Nginx::Socket format
# cannot express, so this is a plain Test::More script on Test::Gateway::Server: it uses the
# Test::Nginx environment (TEST_NGINX_BINARY, TEST_NGINX_LOAD_MODULES, TEST_NGINX_APPS,
# TEST_NGINX_PORT) but writes its own nginx.conf into a temporary prefix, starts nginx
# itself (listening on 127.0.0.1 only), and always stops it. Most sections run nginx
# without a master process (a single process that serves); those that ask a worker's pid
# run one with a master.
#
# Timing bounds are loose (seconds) on purpose: CI has two slow cores.
use strict;
use warnings;
use Test::More;
use IO::Select ();
use IO::Socket::INET ();
use List::Util qw(max min);
use Time::HiRes qw(sleep time);
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Gateway::Process qw(slurp wait_for_exit);
use Test::Gateway::Server qw(
    apps_dir write_conf line_of launch start_nginx stop_nginx pid_from_file log_lines finish
    bad_log_lines run_clients get send_request read_response describe patience
);

my $apps = apps_dir() or plan skip_all => 'TEST_NGINX_APPS is not set';

my $hex32 = qr/[0-9a-f]{32}/;
# What stands between a level and the message: Debian's nginx writes its startup errors to
# stderr in the error log's format, with "PID#TID: ".
my $pid_prefix = qr/(?:\d+#\d+: )?/;
# The one panic a section causes on purpose, which finish would otherwise count as a crash.
my $handler_panic = qr/\[error\] .*gateway: app "stream" failed: handler panicked at /;

# --- the sections ---------------------------------------------------------------------

my $hello = <<"LOC";
        location /hello {
            gateway_app $apps/libhello.so;
        }
        location = /pid {
            return 200 "\$pid";
        }
LOC

subtest 'offloaded: ten slow calls run in parallel on the pool while /hello answers at once' => sub {
    my $server = start_nginx(name => 'gateway-016', master => 0, server => <<"CONF");
        location /slow/ {
            gateway_app $apps/libstream.so;
            gateway_thread_pool default;
        }
$hello
CONF
    my @clients = run_clients($server, [
        (map { [0, '/slow/sleep?ms=2000'] } 1 .. 10),
        [0.5, '/hello'],
    ]);
    my $hi = pop @clients;
    note describe($_) for @clients, $hi;
    for my $i (0 .. $#clients) {
        my $c = $clients[$i];
        is "$c->{status} $c->{body}", "200 slept 2000 ms on the thread_pool\n", "slow call $i answered";
        cmp_ok $c->{done} // 99, '>=', 2, "slow call $i took its 2 s";
    }
    is "$hi->{status} $hi->{body}", "200 Hello, World!\n", '/hello answered';
    cmp_ok $hi->{done} // 99, '<', 1, '/hello answered within 1 s, with ten slow calls running';
    cmp_ok $hi->{finished} // 99, '<', min(map { $_->{finished} // 0 } @clients),
        '/hello answered before any slow call completed';
    # One after another they would take 20 s.
    cmp_ok max(map { $_->{finished} // 99 } @clients), '<', 8,
        'all ten completed within 8 s: they ran in parallel';
    finish($server, 'offloaded');
};

# Without gateway_thread_pool a blocking call runs on the worker's event loop: the one
# worker process does nothing else until it returns, so slow calls complete one after
# another and every other request, however cheap, waits behind them. This stall is the
# reason gateway_thread_pool exists.
subtest 'not offloaded: slow calls stall the worker, one after another, and /hello waits' => sub {
    my $server = start_nginx(name => 'gateway-016', master => 0, server => <<"CONF");
        location /slow/ {
            gateway_app $apps/libstream.so;
        }
$hello
CONF
    my @clients = run_clients($server, [
        (map { [0, '/slow/sleep?ms=1500'] } 1 .. 3),
        [0.5, '/hello'],
    ]);
    my $hi = pop @clients;
    note describe($_) for @clients, $hi;
    for my $i (0 .. $#clients) {
        my $c = $clients[$i];
        is "$c->{status} $c->{body}", "200 slept 1500 ms on the event_loop\n", "slow call $i answered";
    }
    # Each blocks the loop 1.5 s, and none began before the start: the last completes at
    # least 4.5 s after it.
    cmp_ok max(map { $_->{finished} // 0 } @clients), '>=', 4.5,
        'the three slow calls ran one after another (the last took >= 4.5 s)';
    is "$hi->{status} $hi->{body}", "200 Hello, World!\n", '/hello answered in the end';
    cmp_ok $hi->{done} // 0, '>=', 1, '/hello, sent 0.5 s in, waited >= 1 s for the blocked loop';
    cmp_ok $hi->{finished} // 0, '>=', min(map { $_->{finished} // 99 } @clients),
        '/hello answered only after a slow call completed';
    finish($server, 'not offloaded');
};

# Connections accepted while the worker is idle, for requests written later all at once.
sub idle_connections {
    my ($server, $count) = @_;
    my @socks = map {
        IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $server->{port}, Proto => 'tcp', Timeout => 5)
            or die "connect: $!"
    } 1 .. $count;
    sleep 0.3;
    return @socks;
}

subtest 'quick calls on a pool share thread tasks, and each is answered with its own request' => sub {
    my $server = start_nginx(name => 'gateway-016', master => 0, server => <<"CONF");
        location /env/ {
            gateway_app $apps/libenviron.so;
            gateway_thread_pool default;
        }
        location /block/ {
            gateway_app $apps/libstream.so;
        }
$hello
CONF
    # Calls one by one time the pool: they are quick.
    my @warm = map { get($server, "/env/?warm=$_")->{status} } 1 .. 30;
    is_deeply \@warm, [(200) x 30], '30 calls one by one time the pool';
    # 60 connections, accepted while idle; their requests arrive while an inline call blocks
    # the event loop, so its next turn makes all 60 calls ready at once.
    my @socks = idle_connections($server, 60);
    my $blocker = send_request($server, '/block/sleep?ms=500');
    sleep 0.1;
    syswrite $socks[$_ - 1], "GET /env/?n=$_ HTTP/1.0\r\nHost: localhost\r\n\r\n" for 1 .. 60;
    my @bodies = map { local $/; my $sock = $_; scalar <$sock> } @socks;
    my @wrong = grep { $bodies[$_ - 1] !~ m{\AHTTP/1\.1 200 .*"QUERY_STRING": "n=$_"}s } 1 .. 60;
    is "@wrong", '', '60 calls ready at once: each 200 with its own query string';
    read_response($blocker);
    is "$blocker->{status} $blocker->{body}", "200 slept 500 ms on the event_loop\n", 'the blocking call answered';
    is "$_->{status} $_->{body}", "200 Hello, World!\n", 'the worker serves on' for get($server, '/hello');
    finish($server, 'quick calls');
};

subtest 'a slow call holds up only its own thread: quick calls ready with it answer before it ends' => sub {
    my $server = start_nginx(name => 'gateway-016', master => 0, main => 'thread_pool four threads=4;',
        server => <<"CONF");
        location /pool/ {
            gateway_app $apps/libstream.so;
            gateway_thread_pool four;
        }
        location /block/ {
            gateway_app $apps/libstream.so;
        }
$hello
CONF
    # Quick calls one by one: the pool's calls are known to be quick, as under load.
    my @warm = map { get($server, "/pool/sleep?ms=0&warm=$_")->{status} } 1 .. 30;
    is_deeply \@warm, [(200) x 30], '30 quick calls one by one';
    # As above, one turn of the event loop makes all 21 calls ready, the slow one first.
    my @socks = idle_connections($server, 21);
    my $blocker = send_request($server, '/block/sleep?ms=500');
    sleep 0.1;
    my @uris = ('/pool/sleep?ms=2000', map { "/pool/sleep?ms=0&n=$_" } 1 .. 20);
    my $start = time;
    syswrite $socks[$_], "GET $uris[$_] HTTP/1.0\r\nHost: localhost\r\n\r\n" for 0 .. $#socks;
    # Each response ends with nginx closing its connection (HTTP/1.0).
    my (%raw, %done);
    my $select = IO::Select->new(@socks);
    while ($select->count && time - $start < 30 * patience()) {
        for my $sock ($select->can_read(1)) {
            my $n = sysread $sock, my $buf, 65536;
            if ($n) {
                $raw{$sock} .= $buf;
                next;
            }
            $done{$sock} = time - $start;
            $select->remove($sock);
        }
    }
    my ($slow, @quick) = map { { raw => $raw{$_} // '', done => $done{$_} // 99 } } @socks;
    like $slow->{raw}, qr{\AHTTP/1\.1 200 .*\r\n\r\nslept 2000 ms on the thread_pool\n\z}s, 'the slow call answered';
    my @wrong = grep { $quick[$_ - 1]{raw} !~ m{\AHTTP/1\.1 200 .*\r\n\r\nslept 0 ms on the thread_pool\n\z}s } 1 .. 20;
    is "@wrong", '', 'the 20 quick calls answered';
    note sprintf 'answered after (s): slow %.3f, quick %s', $slow->{done}, join ' ', map { sprintf '%.3f', $_->{done} } @quick;
    cmp_ok $slow->{done}, '>=', 2, 'the slow call took its 2 s';
    my $last = max(map { $_->{done} } @quick);
    # They wait for the blocking call (0.4 s more), not for the slow one.
    cmp_ok $last, '<', 1.2 * patience(), 'every quick call answered within 1.2 s';
    cmp_ok $last, '<', $slow->{done} - 0.5, '... well before the slow call ended';
    read_response($blocker);
    is "$blocker->{status} $blocker->{body}", "200 slept 500 ms on the event_loop\n", 'the blocking call answered';
    finish($server, 'slow call');
};

# A pool's max_queue bounds the calls waiting for its threads.
subtest 'a full queue: 503, logged by the module' => sub {
    my $server = start_nginx(name => 'gateway-016', master => 0, main => 'thread_pool tiny threads=1 max_queue=1;',
        server => <<"CONF");
        location /slow/ {
            gateway_app $apps/libstream.so;
            gateway_thread_pool tiny;
        }
$hello
CONF
    # The first runs on the only thread, the second waits in the queue of one, the third
    # finds the queue full (the module keeps the calls' queue; nginx's own holds the tasks
    # that run them).
    my @clients = run_clients($server, [
        [0, '/slow/sleep?ms=1500'],
        [0.3, '/slow/sleep?ms=1500'],
        [0.6, '/slow/sleep?ms=1500'],
    ]);
    note describe($_) for @clients;
    is_deeply [map { $_->{status} } @clients], [200, 200, 503],
        'running, queued, refused: 200, 200, 503';
    is $clients[0]{body}, "slept 1500 ms on the thread_pool\n", 'the running call answered';
    is $clients[1]{body}, "slept 1500 ms on the thread_pool\n", 'the queued call answered';
    like $clients[2]{body}, qr{<h1>503 Service Temporarily Unavailable</h1>}, 'the refused call: a 503 page';
    cmp_ok $clients[2]{finished} // 99, '<', $clients[0]{finished} // 0,
        'the 503 came at once, before the running call completed';
    cmp_ok $clients[1]{finished} // 0, '>=', 3,
        'the queued call ran after the first, on the one thread (>= 3 s from the start)';
    my @refused = log_lines($server,
        qr/\[error\] .*gateway: app "stream" call refused: the thread pool's queue is full \(request $hex32\)/);
    is scalar @refused, 1, 'the module logged the refused call with its request id'
        or diag slurp($server->{log});
    is "$_->{status} $_->{body}", "200 Hello, World!\n", 'the worker serves on' for get($server, '/hello');
    finish($server, 'full queue');
};

subtest 'a graceful quit waits for the calls running and queued on the pool' => sub {
    my $server = start_nginx(name => 'gateway-016', main => 'thread_pool one threads=1;', server => <<"CONF");
        location /slow/ {
            gateway_app $apps/libstream.so;
            gateway_thread_pool one;
        }
CONF
    my $master = $server->{pid};
    my @clients = run_clients($server, [
        [0, '/slow/sleep?ms=1500'],
        [0.3, '/slow/sleep?ms=500'],
        [0.6, sub { kill QUIT => $master }],
    ]);
    note describe($_) for @clients;
    is_deeply [map { "$_->{status} $_->{body}" } @clients],
        ["200 slept 1500 ms on the thread_pool\n", "200 slept 500 ms on the thread_pool\n"],
        'both calls answered after the quit';
    cmp_ok $clients[1]{finished} // 0, '>=', 2, 'the queued one ran after the first, on the one thread';
    ok wait_for_exit($master, 10 * patience()), 'then nginx exits';
    is_deeply [bad_log_lines($server)], [], 'no [alert], [crit], crash or panic in the error log'
        or diag slurp($server->{log});
};

subtest 'a deadline: 504 at gateway_timeout, the call finishes detached, the worker lives' => sub {
    my $server = start_nginx(name => 'gateway-016', server => <<"CONF");
        location /slow/ {
            gateway_app $apps/libstream.so;
            gateway_thread_pool default;
            gateway_timeout 1s;
        }
$hello
CONF
    my $pid = get($server, '/pid')->{body};
    like $pid, qr/^\d+$/, "the worker's pid: $pid";
    my @clients = run_clients($server, [
        [0, '/slow/sleep?ms=3000'],
        [0, '/slow/sleep?ms=3000'],
        [1.5, '/pid'],
        [1.5, '/slow/sleep?ms=0'],
    ], wait_eof => 1);
    note describe($_) for @clients;
    my ($late1, $late2, $pid_then, $quick) = @clients;
    for my $c ($late1, $late2) {
        is $c->{status}, 504, 'a call past gateway_timeout: 504';
        like $c->{body}, qr{<h1>504 Gateway Time-out</h1>}, '... with the 504 page';
        cmp_ok $c->{done} // 0, '>=', 0.9, '... not before the 1 s deadline';
        cmp_ok $c->{done} // 99, '<', 2.5, '... and without waiting for the 3 s call';
        ok defined $c->{eof}, '... and the connection is closed in the end (not leaked)';
    }
    is "$pid_then->{status} $pid_then->{body}", "200 $pid", 'the same worker serves while the calls run detached';
    is "$quick->{status} $quick->{body}", "200 slept 0 ms on the thread_pool\n",
        'and runs new calls on the pool meanwhile';
    # Both detached calls have returned now (their connections closed); give the worker
    # a moment to log whatever it would.
    sleep 1;
    is get($server, '/pid')->{body}, $pid, 'after the detached calls finished: still the same worker';
    my @timeouts = log_lines($server, qr/\[error\] .*gateway:/);
    is scalar @timeouts, 2, 'the module logged two errors, one per timed-out call, and nothing else'
        or diag @timeouts;
    my $line = qr/\[error\] .*gateway: app "stream" call exceeded gateway_timeout, answered 504; the call finishes detached and its result is discarded \((\d) so far in this worker\) \(request ($hex32)\)/;
    my @counts = map { /$line/ ? $1 : 'unexpected' } @timeouts;
    is_deeply [sort @counts], [1, 2], 'each says it timed out, with the count in this worker'
        or diag @timeouts;
    my %ids = map { /$line/ ? ($2 => 1) : () } @timeouts;
    is scalar keys %ids, 2, 'each names its own request id';
    finish($server, 'deadline');
};

subtest 'gateway.runs_on, streams and a panic on a thread' => sub {
    my $server = start_nginx(name => 'gateway-016', server => <<"CONF");
        location /slow/ {
            gateway_app $apps/libstream.so;
            gateway_thread_pool default;
        }
        location /direct/ {
            gateway_app $apps/libstream.so;
        }
$hello
CONF
    my $pid = get($server, '/pid')->{body};
    like $pid, qr/^\d+$/, "the worker's pid: $pid";
    my $c = get($server, '/slow/sleep?ms=0');
    is "$c->{status} $c->{body}", "200 slept 0 ms on the thread_pool\n", 'offloaded: runs_on is thread_pool';
    $c = get($server, '/direct/sleep?ms=0');
    is "$c->{status} $c->{body}", "200 slept 0 ms on the event_loop\n", 'not offloaded: runs_on is event_loop';
    $c = get($server, '/slow/lines?n=3');
    is "$c->{status} $c->{body}", "200 line 1\nline 2\nline 3\n", 'an offloaded call can answer a stream';

    $c = get($server, '/slow/panic');
    is $c->{status}, 500, 'a handler panicking on a thread: 500';
    like $c->{body}, qr{<h1>500 Internal Server Error</h1>}, '... with the 500 page';
    my @panics = log_lines($server,
        qr{\[error\] .*gateway: app "stream" failed: handler panicked at examples/stream/src/lib\.rs:\d+:\d+: the handler gave up \(request $hex32\)});
    is scalar @panics, 1, 'the panic is logged as for a call on the event loop'
        or diag slurp($server->{log});
    is get($server, '/pid')->{body}, $pid, 'the same worker serves on';
    $c = get($server, '/slow/sleep?ms=0');
    is "$c->{status} $c->{body}", "200 slept 0 ms on the thread_pool\n", '... the offloaded location too';
    is get($server, '/hello')->{body}, "Hello, World!\n", '... and other apps';
    finish($server, 'runs_on and panic', ok => $handler_panic);
};

subtest 'bad directives stop nginx from starting' => sub {
    for my $case (
        [ 'an undeclared thread pool', 'gateway_thread_pool nosuchpool;',
          sub { qr/\[emerg\] ${pid_prefix}unknown thread pool "nosuchpool" in \Q$_[0]\E\n/ } ],
        [ 'a zero timeout', 'gateway_timeout 0;',
          sub { qr/\[emerg\] ${pid_prefix}gateway_timeout "0" is not a positive time in \Q$_[0]\E\n/ } ],
        [ 'a timeout that is no time', 'gateway_timeout abc;',
          sub { qr/\[emerg\] ${pid_prefix}gateway_timeout "abc" is not a positive time in \Q$_[0]\E\n/ } ],
        [ 'two thread pools', "gateway_thread_pool default;\n            gateway_thread_pool default2;",
          sub { qr/\[emerg\] ${pid_prefix}"gateway_thread_pool" directive is duplicate in \Q$_[0]\E\n/ }, 'default2' ],
        [ 'two timeouts', "gateway_timeout 1s;\n            gateway_timeout 2s;",
          sub { qr/\[emerg\] ${pid_prefix}"gateway_timeout" directive is duplicate in \Q$_[0]\E\n/ }, '2s' ],
    ) {
        my ($what, $directive, $message, $marker) = @$case;
        my $server = write_conf(name => 'gateway-016', server => <<"CONF");
        location /slow/ {
            gateway_app $apps/libstream.so;
            $directive
        }
CONF
        my $where = "$server->{conf}:" . line_of($server, $marker // $directive);
        my ($status, $stderr) = launch($server);
        isnt $status, 0, "$what: nginx exits with an error";
        like $stderr, $message->($where), "$what: the [emerg] names $where" or diag $stderr;
        if (!$status) {    # it should have died; do not leave it running
            $server->{pid} = pid_from_file($server);
            stop_nginx($server);
        }
    }
};

done_testing;
