# A tower app's life in the worker: its runtime's threads (`tokio_threads`); a graceful quit
# (`nginx -s quit`), which lets calls in flight finish (a request sleeping 300 ms answers 200)
# while bounding each by its gateway_timeout (a stuck one gets its 504 and its future is
# dropped), then drops the service and the background tasks inside the runtime and gives what
# is left (a blocking task) `shutdown_timeout` before the worker exits; with
# `worker_shutdown_timeout`, a quit that cuts a call still pending and a stream waiting on its
# app at that timeout (the call cancelled, its future dropped, the worker gone at once, not
# after the call's 30 s); a reload that picks up
# a rebuilt app library (renamed over the mounted path, or overwritten in place) while a call
# in flight finishes on the old worker with the old code; and an app that sets its own
# `tracing` subscriber, which the adapter keeps.
#
# With examples/tower-hello and the fixture test-nginx/fixtures/tower-probe. A plain
# Test::More script on Test::Gateway::Server; timing bounds are loose on purpose (CI has two
# slow cores) and scale with patience().
use strict;
use warnings;
use Test::More;
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Gateway::Process qw(alive wait_for_exit slurp);
use Test::Gateway::Server qw(
    apps_dir patience start_nginx stop_nginx reload worker_pids log_lines access_lines
    bad_log_lines finish get send_request read_response describe wait_until
);

my $apps = apps_dir() or plan skip_all => 'TEST_NGINX_APPS is not set';
my ($hello, $probe) = map { "$apps/lib$_.so" } qw(tower_hello tower_probe);
-f $_ or plan skip_all => "$_ is not built" for $hello, $probe;

my $hex32 = qr/[0-9a-f]{32}/;
my $k = patience();

# The worker's tokio threads of an app: named after it, which /proc shows cut to 15 bytes.
sub runtime_threads {
    my ($pid, $app) = @_;
    my $name = substr "$app-tokio", 0, 15;
    return scalar grep { slurp($_) eq "$name\n" } glob "/proc/$pid/task/*/comm";
}

subtest 'graceful quit: calls in flight finish or time out, the runtime is shut down, the worker exits' => sub {
    my $server = start_nginx(name => 'gateway-027', server => <<"CONF");
        location /t/ {
            gateway_app $hello;
        }
        location /tq/ {
            gateway_app $hello;
            gateway_timeout 1s;
        }
        location /p/ {
            gateway_app $probe;
            gateway_app_param tokio_threads 3;
            gateway_app_param shutdown_timeout 500ms;
        }
CONF
    my ($worker) = worker_pids($server);
    is get($server, '/p/hello')->{body}, "tower-probe\n", '/p/hello: the probe answers';
    # A runtime's threads name themselves as they start: at init, but under valgrind the
    # first request may come first (it need not wait for them: a ready future completes on
    # nginx's loop).
    wait_until(5 * $k, sub { runtime_threads($worker, 'tower-probe') >= 3
        && runtime_threads($worker, 'tower-hello') >= 4 });
    is runtime_threads($worker, 'tower-probe'), 3, 'tokio_threads 3: its runtime has 3 threads';
    is runtime_threads($worker, 'tower-hello'), 4, 'two locations of tower-hello: 2 threads each (the default)';
    is get($server, '/p/linger?ms=30000')->{body}, "lingering 30000 ms\n",
        'a blocking task that sleeps 30 s, which nothing can cancel';

    my $short = send_request($server, '/t/sleep?ms=300');
    my $stuck = send_request($server, '/tq/sleep?ms=30000');
    sleep 0.1;
    my $quit = time;
    kill QUIT => $server->{pid};
    read_response($_) for $short, $stuck;
    note describe($_) for $short, $stuck;
    is "$short->{status} $short->{body}", "200 slept 300 ms\n", 'a call sleeping 300 ms finishes during the quit';
    is $stuck->{status}, 504, 'a stuck one gets its 504 at its gateway_timeout (1s)';
    cmp_ok $stuck->{received} - $quit, '<', 1 + 1 * $k, sprintf '... %.2f s after the quit', $stuck->{received} - $quit;
    ok wait_for_exit($server->{pid}, 10 * $k), 'nginx exits';
    my $took = time - $quit;
    note sprintf 'nginx exited %.2f s after the quit, %.2f s after the last response', $took,
        $took - ($stuck->{received} - $quit);
    cmp_ok $took - ($stuck->{received} - $quit), '>=', 0.4,
        'the worker gave the blocking task its shutdown_timeout (500ms) ...';
    cmp_ok $took - ($stuck->{received} - $quit), '<', 0.5 + 2 * $k, '... and no more';
    stop_nginx($server);
    my $app = qr/\[info\] .*gateway: app "tower-probe" tower_probe:/;
    is scalar(log_lines($server, qr/$app service dropped$/)), 1, 'the service was dropped';
    is scalar(log_lines($server, qr/$app background task dropped$/)), 1, 'the background task it spawned was dropped';
    is scalar(log_lines($server, qr/worker process $worker exited with code 0/)), 1, 'the worker exited normally';
    my @bad = bad_log_lines($server);
    is_deeply \@bad, [], 'no [alert], [crit], crash or panic in the error log';
    diag 'error log: ' . slurp($server->{log}) unless Test::More->builder->is_passing;
};

subtest 'worker_shutdown_timeout cuts a call still pending and a stream waiting on its app' => sub {
    my $server = start_nginx(name => 'gateway-027', main => 'worker_shutdown_timeout 1s;', server => <<"CONF");
        location /p/ {
            gateway_app $probe;
            gateway_app_param shutdown_timeout 500ms;
        }
CONF
    my ($worker) = worker_pids($server);
    my $pending = send_request($server, '/p/sleep?ms=30000');
    my $stream = send_request($server, '/p/trickle?ms=30000');
    sleep 0.3 * $k;
    my $quit = time;
    kill QUIT => $server->{pid};
    # The stream first: read_response reads one connection at a time.
    read_response($_) for $stream, $pending;
    note describe($_) for $pending, $stream;
    ok wait_for_exit($worker, 10 * $k), 'the worker exits';
    my $took = time - $quit;
    note sprintf 'the worker exited %.2f s after the quit', $took;
    # The shutdown timer fires at 1 s; the app's cancelled future then fails its call at once.
    cmp_ok $took, '<', 1 + 1 * $k, '... about worker_shutdown_timeout (1s) after the quit, not after the 30 s sleep';
    is $pending->{status}, 'none', 'the pending call\'s client got no response ...';
    cmp_ok $pending->{received} - $quit, '>=', 0.9, '... its connection closed at the shutdown timeout';
    cmp_ok $pending->{received} - $quit, '<', 1 + 1 * $k, '... not later';
    is "$stream->{status} $stream->{body}", "200 first\n", 'the stream\'s client got its first chunk only ...';
    cmp_ok $stream->{received} - $quit, '<', 1 + 1 * $k, '... and its connection closed at the shutdown timeout';
    ok wait_for_exit($server->{pid}, 5 * $k), 'nginx exits';
    stop_nginx($server);
    my $app = qr/\[info\] .*gateway: app "tower-probe" tower_probe:/;
    is scalar(log_lines($server, qr/$app sleep cancelled \(request $hex32\)$/)), 1,
        'the app heard the call was cancelled: its future was dropped';
    is scalar(log_lines($server, qr/\[info\] .*tower_probe: trickle cancelled/)), 1,
        'the stream\'s body was dropped before its end';
    is scalar(log_lines($server, qr/\[info\] .*gateway: app "tower-probe" worker_shutdown_timeout ended the request during the call; it finishes detached \(request $hex32\), client: /)), 1,
        'the module logged the call it stopped waiting for';
    is scalar(log_lines($server, qr/worker process $worker exited with code 0/)), 1, 'the worker exited normally';
    my @bad = bad_log_lines($server);
    is_deeply \@bad, [], 'no [alert], [crit], crash, panic or "http request count is zero" in the error log';
    diag 'error log: ' . slurp($server->{log}) unless Test::More->builder->is_passing;
};

subtest 'reload: a rebuilt app library is picked up, a call in flight finishes with the old' => sub {
    my $libs = tempdir('gateway-027-apps-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    copy($hello, "$libs/app.so") or die "copy: $!";
    my $server = start_nginx(name => 'gateway-027', server => <<"CONF");
        location /r/ {
            gateway_app $libs/app.so;
        }
CONF
    my $c = get($server, '/r/hello');
    is "$c->{status} $c->{body}", "200 Hello from axum!\n", 'tower-hello answers';
    my ($old) = worker_pids($server);

    my $in_flight = send_request($server, '/r/sleep?ms=1000');
    sleep 0.1;
    # Renamed over the mounted path, as an install does.
    copy($probe, "$libs/app.so.new") or die "copy: $!";
    rename "$libs/app.so.new", "$libs/app.so" or die "rename: $!";
    is reload($server, in_flight => 1), '', 'reload (HUP)';
    $c = get($server, '/r/hello');
    is "$c->{status} $c->{body}", "200 tower-probe\n", 'after the reload: the new library answers';
    read_response($in_flight);
    is "$in_flight->{status} $in_flight->{body}", "200 slept 1000 ms\n",
        'the call in flight during the reload finished with the old library';
    ok wait_for_exit($old, 5 * $k), 'the old worker exited';

    # Overwritten in place: the worker runs its own copy of the library.
    copy($hello, "$libs/app.so") or die "copy: $!";
    is reload($server), '', 'reload again';
    $c = get($server, '/r/hello');
    is "$c->{status} $c->{body}", "200 Hello from axum!\n", 'the library overwritten in place answers';
    finish($server, 'reload');
};

subtest 'an app that sets its own tracing subscriber keeps it' => sub {
    my $prefix = tempdir('gateway-027-own-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $own = "$prefix/own.log";
    my $server = start_nginx(name => 'gateway-027', server => <<"CONF");
        location /p/ {
            gateway_app $probe;
            gateway_app_param own_subscriber $own;
        }
CONF
    my $c = get($server, '/p/trace');
    is "$c->{status} $c->{body}", "200 traced\n", '/p/trace: 200';
    my ($entry) = access_lines($server, qr{ /p/trace$});
    my ($id) = ($entry // '') =~ /^($hex32) 200 /;
    ok $id, 'the access log has its $request_id';
    ok wait_until(2 * $k, sub { slurp($own) =~ /probe event/ }), 'the event went to the app\'s subscriber';
    like slurp($own), qr/INFO request\{id="?$id"?\}: tower_probe: probe event/,
        '... inside the adapter\'s request span, with the request id';
    is scalar(log_lines($server, qr/probe event/)), 0, '... and not to the error log';
    finish($server, 'own subscriber');
    like slurp($own), qr/background task dropped/, 'at exit too';
};

done_testing;
