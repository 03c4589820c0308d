# ABI 1.1 from the app's side, with the fixture test-nginx/fixtures/deferred (an app on the
# raw ABI with one timer thread per instance): calls completed later from that thread, on
# the event loop and on a thread pool; thousands of them pending on one worker, costing
# memory and not threads, while the worker serves on; gateway_timeout on a call the app
# still holds, whose late response must be released exactly once; streams that answer
# STREAM_PENDING and are woken with Host::wake; Host::log with the request id; the 1.1
# Setup fields; the configuration-time check (nginx -t); and an app binary built against
# ABI 1.0 (fixtures/abi-1-0) served by this module.
#
# A plain Test::More script, like 016-offload.t, on Test::Gateway::Server: it writes its
# own nginx.conf into a temporary prefix, starts nginx itself (listening on 127.0.0.1 only)
# and always stops it. Timing bounds are loose on purpose (CI has two slow cores), and
# scale with TEST_NGINX_TIMEOUT (scripts/test-valgrind sets 60).
use strict;
use warnings;
use Test::More;
use List::Util qw(max min);
use Time::HiRes qw(sleep time);
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Gateway::Server qw(
    apps_dir patience under_valgrind fd_limit write_conf line_of nginx_t start_nginx
    stop_nginx worker_pids thread_count log_lines access_lines finish run_clients get describe
    wait_until
);
use Test::Gateway::Process qw(write_file);

my $apps = apps_dir() or plan skip_all => 'TEST_NGINX_APPS is not set';

# 2,000 concurrent clients need 2,000 sockets here and as many connections in the nginx
# worker, which inherits this process's file limit. Perl cannot raise it without
# BSD::Resource, so the script runs itself again under a shell's `ulimit -S -n`; if the hard
# limit forbids that, the section uses fewer clients and says so.
BEGIN {
    if (!$ENV{GATEWAY_020_ULIMIT} && Test::Gateway::Server::fd_limit() < 2400) {
        $ENV{GATEWAY_020_ULIMIT} = 1;
        exec '/bin/sh', '-c', 'ulimit -S -n 2400 2>/dev/null; exec "$@"', 'sh', $^X, $0, @ARGV;
    }
}

my $hex32 = qr/[0-9a-f]{32}/;
# Debian's nginx writes its startup errors to stderr in the error log's format, with "PID#TID: ".
my $pid_prefix = qr/(?:\d+#\d+: )?/;
my $k = patience();    # 1, or 6 under valgrind

my $deferred = "$apps/libdeferred.so";

# The fixture's counters: responded, released, pending.
sub stats {
    my ($server, $prefix) = @_;
    my $c = get($server, "$prefix/stats");
    return $c->{body} =~ /^responded=(\d+) released=(\d+) pending=(-?\d+)$/ ? ($1, $2, $3) : ();
}

# Every response handed over has been released, and no call is pending (polls a while:
# a release may trail the client's end of the connection).
sub all_released {
    my ($server, $prefix, $what) = @_;
    my @stats;
    wait_until(3 * $k, sub {
        @stats = stats($server, $prefix);
        @stats && $stats[0] == $stats[1] && $stats[2] == 0;
    });
    ok @stats && $stats[0] == $stats[1] && $stats[2] == 0,
        "$what: every response released exactly once, no call pending (responded=$stats[0] "
        . "released=$stats[1] pending=$stats[2])";
}

# The body the fixture streams: chunk k is `(k + i) % 26` letters from "a".
sub stream_body {
    my ($chunks, $size) = @_;
    my $letters = join '', 'a' .. 'z';
    my $cycle = $letters x (int($size / 26) + 2);
    return join '', map { substr($cycle, $_ % 26, $size) } 0 .. $chunks - 1;
}

sub first_difference {
    my ($got, $want) = @_;
    my $i = 0;
    $i++ while $i < length $got && $i < length $want && substr($got, $i, 1) eq substr($want, $i, 1);
    return "first difference at byte $i of " . length($got) . ' (expected ' . length($want) . ')';
}

my $locations = <<"CONF";
        # Calls on the event loop.
        location /d/ {
            gateway_app $deferred;
        }
        # The same app on a pool: another instance.
        location /p/ {
            gateway_app $deferred;
            gateway_thread_pool gw;
        }
CONF

subtest 'deferred calls: answered or failed later from the app\'s thread, inline and on a pool' => sub {
    my $server = start_nginx(name => 'gateway-020', main => 'thread_pool gw threads=2;', server => $locations);
    for my $case (['/d', 'the event loop', 'runs_on=0 threads=0 worker=0'],
                  ['/p', 'a thread pool', 'runs_on=1 threads=2 worker=0']) {
        my ($prefix, $where, $setup) = @$case;
        my $c = get($server, "$prefix/defer?ms=50");
        is "$c->{status} $c->{body}", "200 deferred 50 ms\n", "on $where: /defer?ms=50 answered later";
        cmp_ok $c->{done} // 0, '>=', 0.05, "... after its 50 ms";
        $c = get($server, "$prefix/fail?ms=50");
        is $c->{status}, 500, "on $where: /fail?ms=50 is a 500";
        cmp_ok $c->{done} // 0, '>=', 0.05, "... after its 50 ms";
        $c = get($server, "$prefix/now");
        is "$c->{status} $c->{body}", "200 now\n", "on $where: /now answered inline";
        $c = get($server, "$prefix/setup");
        is "$c->{status} $c->{body}", "200 $setup\n", "on $where: the instance's Setup: $setup";
    }
    my @failed = log_lines($server, qr/\[error\] .*gateway: app "deferred".* failed later.*\(request $hex32\)/);
    is scalar @failed, 2, 'each failure is logged as an [error], naming the app and the request'
        or diag @failed;
    my @started = log_lines($server, qr/\[info\] .*app "deferred".*deferred app started in worker 0/);
    is scalar @started, 2, 'each instance logged its start through Setup::log_handle, at [info]'
        or diag @started;
    is scalar(grep { /$hex32/ } @started), 0, '... without a request id';
    all_released($server, '/d', 'after the deferred calls');
    finish($server, 'deferred calls');
};

subtest 'Host::log from another thread, with the request id' => sub {
    my $server = start_nginx(name => 'gateway-020', main => 'thread_pool gw threads=2;', server => $locations);
    my %ids;
    for my $case ([1, 'error'], [2, 'warn'], [3, 'info']) {
        my ($level, $name) = @$case;
        my $c = get($server, "/d/log?level=$level");
        is "$c->{status} $c->{body}", "200 logged\n", "/log?level=$level answered";
        my ($entry) = access_lines($server, qr{ /d/log\?level=$level$});
        my ($id) = ($entry // '') =~ /^($hex32) 200 /;
        ok $id, "the access log has its \$request_id" or next;
        my @lines = log_lines($server, qr/hello from a thread/);
        my @mine = grep { /$id/ } @lines;
        is scalar @mine, 1, "level $level: one line with the request's id" or diag @lines;
        like $mine[0] // '', qr/\[$name\] .*gateway: app "deferred".*hello from a thread/,
            "level $level: logged at [$name], naming the app";
    }
    my $c = get($server, '/p/log?level=2');
    is "$c->{status} $c->{body}", "200 logged\n", '/log on the pool location answered';
    my ($entry) = access_lines($server, qr{ /p/log\?level=2$});
    my ($id) = ($entry // '') =~ /^($hex32) /;
    is scalar(grep { /\[warn\] .*gateway: app "deferred".*hello from a thread.*$id/ } log_lines($server, qr/hello/)), 1,
        '... and logged its [warn] line with its request id';
    $c = get($server, '/d/log?level=4');
    is "$c->{status} $c->{body}", "200 logged\n", '/log?level=4 (debug) answered';
    is scalar(log_lines($server, qr/hello from a thread/)), 4, '... and logged nothing: error_log is at info';
    finish($server, 'Host::log');
};

subtest 'STREAM_PENDING: a stream woken by Host::wake, chunk by chunk' => sub {
    my $server = start_nginx(name => 'gateway-020', main => 'thread_pool gw threads=2;', server => $locations);
    my $want = stream_body(200, 1000);
    for my $prefix ('/d', '/p') {
        for my $wake (1, 0) {
            my $uri = "$prefix/stream?chunks=200&size=1000&wake_ms=$wake";
            my $c = get($server, $uri);
            note describe($c);
            is $c->{status}, 200, "$uri: 200";
            is length $c->{body}, 200_000, "$uri: exactly 200,000 body bytes";
            ok $c->{body} eq $want, "$uri: the 200 chunks in order"
                or diag first_difference($c->{body}, $want);
        }
    }
    all_released($server, '/d', 'after the streams');
    finish($server, 'STREAM_PENDING');
};

subtest 'thousands of pending calls on one worker: memory, not threads, and the worker serves on' => sub {
    # Each client needs a socket here and a connection in the worker (see the BEGIN block).
    my $limit = fd_limit();
    my $n = min(2000, $limit - 300);
    $n = 300 if under_valgrind() && $n > 300;    # valgrind's pace
    note "fd limit $limit: $n concurrent calls" . ($n < 2000 ? ' (fewer than 2,000: the fd limit or valgrind)' : '');
    my $due = int(1000 * $k);
    my $server = start_nginx(name => 'gateway-020', connections => $n + 200,
        # A burst of connects must not overflow the listen queue (a dropped SYN is retried
        # only a second later).
        listen => 'backlog=4096', events => '    multi_accept on;',
        main => 'thread_pool gw threads=2;', server => $locations);
    my ($worker) = worker_pids($server);
    get($server, '/d/now');    # the instance is up, its timer thread started
    my $before = thread_count($worker);
    my ($during, $pending);
    # The look at the threads and /now come once every deferred call is sent (or 0.3 s
    # in), before the first is due.
    my @clients = run_clients($server, [
        (map { [0, "/d/defer?ms=$due"] } 1 .. $n),
        [0.3 * $k, sub { $during = thread_count($worker) }],
        [0.3 * $k, '/d/now'],
    ], limit => 20 * $k);
    my $now = pop @clients;
    note sprintf 'the %d deferred calls were sent within %.3f s', $n, max(map { $_->{sent} // 0 } @clients);
    my @wrong = grep { "$_->{status} $_->{body}" ne "200 deferred $due ms\n" } @clients;
    is scalar @wrong, 0, "all $n deferred calls answered 200"
        or diag join "\n", map { describe($_) } @wrong[0 .. min(9, $#wrong)];
    my $last = max(map { $_->{finished} // 99 } @clients);
    cmp_ok $last, '<', 6 * $k, sprintf 'all within 6 s from the first send (the last at %.2f s)', $last;
    cmp_ok min(map { $_->{done} // 0 } @clients), '>=', $due / 1000, "none before its $due ms";
    note describe($now);
    is "$now->{status} $now->{body}", "200 now\n", '/now, sent while they were pending, answered';
    cmp_ok $now->{done} // 99, '<', 1 * $k, sprintf '... at once (%.3f s)', $now->{done} // -1;
    cmp_ok $now->{finished} // 99, '<', min(map { $_->{finished} // 0 } @clients),
        '... before any deferred call completed';
    ok defined $during, "the worker's threads: $before before, " . ($during // '?') . " with $n calls pending";
    cmp_ok $during // 999, '<=', $before + 2, '... no thread per call';
    is get($server, '/d/now')->{body}, "now\n", 'the worker serves on';
    is_deeply [worker_pids($server)], [$worker], 'the same worker';
    all_released($server, '/d', "after $n deferred calls");
    finish($server, 'thousands pending');
};

subtest 'gateway_timeout on a call the app still holds: 504, and its late response released once' => sub {
    my $timeout = 100 * $k;
    my $late = 400 * $k;
    my $server = start_nginx(name => 'gateway-020', main => 'thread_pool gw threads=2;', server => <<"CONF");
$locations
        location /t/ {
            gateway_app $deferred;
            gateway_timeout ${timeout}ms;
        }
CONF
    # Not waiting for nginx to close the connection: it may hold it until the app is done.
    my ($c) = run_clients($server, [[0, "/t/defer?ms=$late"]]);
    note describe($c);
    is $c->{status}, 504, "/defer?ms=$late with gateway_timeout ${timeout}ms: 504";
    like $c->{body}, qr{<h1>504 Gateway Time-out</h1>}, '... with the 504 page';
    cmp_ok $c->{done} // 0, '>=', 0.09 * $k, sprintf '... not before the deadline (%.3f s)', $c->{done} // -1;
    cmp_ok $c->{done} // 99, '<', $late / 1000, '... and before the app answered';
    my @stats = stats($server, '/d');
    is $stats[2], 1, 'the app still holds the call (pending=1)';
    ($c) = run_clients($server, [[0, "/t/fail?ms=$late"]]);
    is $c->{status}, 504, "/fail?ms=$late: 504 too; the failure comes later";
    # Both late completions are due by now.
    sleep 0.5 * $k;
    all_released($server, '/d', 'after the late completions');
    my @timeouts = log_lines($server, qr/\[error\] .*gateway: app "deferred".*call exceeded gateway_timeout.*\(request $hex32\)/);
    is scalar @timeouts, 2, 'the module logged both timeouts' or diag @timeouts;
    is get($server, '/t/cancelled')->{body}, "2\n", 'the app was told of both (AppDescriptor::cancel)';
    is scalar(log_lines($server, qr/failed later/)), 0, 'the late failure is discarded, not logged as the request\'s';
    is get($server, '/t/now')->{body}, "now\n", 'the location serves on';
    finish($server, 'gateway_timeout');
};

subtest 'the app checks its params at configuration time (nginx -t)' => sub {
    for my $case (
        ['a param that is not a number', 'gateway_app_param default_ms abc;', qr/default_ms "abc" is not a number/],
        ['an unknown param', 'gateway_app_param bogus 1;', qr/unknown param bogus/],
    ) {
        my ($what, $param, $message) = @$case;
        my $server = write_conf(name => 'gateway-020', server => <<"CONF");
        location /d/ {
            gateway_app $deferred;
            $param
        }
CONF
        my $where = "$server->{conf}:" . line_of($server, "gateway_app $deferred");
        my ($status, $output) = nginx_t($server);
        isnt $status, 0, "$what: nginx -t fails";
        like $output, qr/\[emerg\] ${pid_prefix}.*$message.* in \Q$where\E\n/,
            "$what: the [emerg] has the app's message and names the gateway_app line, $where"
            or diag $output;
    }
    my %good = (name => 'gateway-020', server => <<"CONF");
        location /d/ {
            gateway_app $deferred;
            gateway_app_param default_ms 70;
        }
CONF
    my ($status, $output) = nginx_t(write_conf(%good));
    is $status, 0, 'gateway_app_param default_ms 70: nginx -t passes' or diag $output;
    my $server = start_nginx(%good);
    my $c = get($server, '/d/defer');
    is "$c->{status} $c->{body}", "200 deferred 70 ms\n", 'and init got the param';
    finish($server, 'check');
};

subtest 'an app built against ABI 1.0, next to a 1.1 app' => sub {
    my %conf = (name => 'gateway-020', server => <<"CONF");
        location /old/ {
            gateway_app $apps/libabi_1_0.so;
        }
        location /d/ {
            gateway_app $deferred;
        }
CONF
    my ($status, $output) = nginx_t(write_conf(%conf));
    is $status, 0, 'nginx -t accepts the 1.0 app' or diag $output;
    my $server = start_nginx(%conf);
    my $c = get($server, '/old/');
    is "$c->{status} $c->{body}", "200 abi 1.0 app, module minor 2\n", 'the 1.0 app answers, seeing module minor 2';
    $c = get($server, '/d/defer?ms=10');
    is "$c->{status} $c->{body}", "200 deferred 10 ms\n", 'the 1.1 app answers next to it';
    $c = get($server, '/old/again');
    is $c->{status}, 200, 'the 1.0 app again';
    finish($server, 'ABI 1.0');
};

subtest 'a stream reads the request body after the call completed (valid until its release)' => sub {
    my $server = start_nginx(name => 'gateway-020', server => <<"CONF");
        location /b/ {
            gateway_app $deferred;
            client_body_buffer_size 16k;
        }
CONF
    for my $size (1000, 1048576) {
        # Bytes that show a chunk out of place: every 4-byte word is its own offset.
        my $body = join '', map { pack 'N', $_ } 0 .. $size / 4 - 1;
        my $file = "$server->{prefix}/body-$size";
        write_file($file, $body);
        my $url = "http://127.0.0.1:$server->{port}/b/body-stream";
        my $got = qx{curl -s --max-time 30 --data-binary \@$file $url};
        is length($got), $size, "$size bytes: as many streamed back";
        ok $got eq $body, "$size bytes: the very bytes, read by the stream after the call completed";
    }
    my @spilled = log_lines($server, qr/a client request body is buffered to a temporary file/);
    is scalar @spilled, 1, 'the 1 MiB body was in nginx\'s temp file, the 1000 bytes in memory';
    all_released($server, '/b', 'after the body streams');
    finish($server, 'body stream');
};

done_testing;
