# Clients that reset their connection (an RST: SO_LINGER on with a 0 timeout, then close)
# at every stage of a call: while an offloaded call runs, before and after its
# gateway_timeout; while a deferred call (fixtures/deferred) is held; in the middle of a
# stream pulled on a thread pool, plain or woken with STREAM_PENDING; and around an
# error_page 504 that redirects to another app location. The call must finish, detached
# or not, and every response and stream be released exactly once, with the worker alive.
#
# After each case the suite waits for the worker's calls to finish (it polls the status
# and the apps' own counters), then checks: the same worker, no crash, [alert], panic or
# "http request count is zero" in the error log, requests still served, the deferred
# fixture's responses all released and nothing pending, and libstream's dropped streams
# grown by the number of streams started.
#
# A plain Test::More script on Test::Gateway::Server (see 016-offload.t). Times scale with
# TEST_NGINX_TIMEOUT (scripts/test-valgrind sets 60): under valgrind every delay, timeout
# and sleep is 6 times longer, so the resets still come at the same stage of each call.
use strict;
use warnings;
use Test::More;
use JSON::PP ();
use Time::HiRes qw(sleep time);
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Gateway::Server qw(
    apps_dir patience start_nginx worker_pids bad_log_lines log_lines finish run_clients get
    describe wait_until
);

my $apps = apps_dir() or plan skip_all => 'TEST_NGINX_APPS is not set';

my $k = patience();    # 1, or 6 under valgrind
my $clients = 30;
sub ms { int($_[0] * $k) . 'ms' }
sub secs { $_[0] * $k / 1000 }

my $stream = "$apps/libstream.so";
my $deferred = "$apps/libdeferred.so";
my $sleep = int(400 * $k);

my $server = start_nginx(name => 'gateway-021', main => 'thread_pool gw threads=2;',
    connections => 512, http => '    gateway_status_zone gateway 1m;', server => <<"CONF");
        location = /plain {
            return 200 "plain\\n";
        }
        location = /status {
            gateway_status;
        }
        # Offloaded, with a deadline the calls meet (the first ones: the rest time out in
        # the queue of the pool's two threads).
        location /s1/ {
            gateway_app $stream;
            gateway_thread_pool gw;
            gateway_timeout @{[ms(1000)]};
        }
        # Offloaded, with a deadline the calls miss: they finish detached.
        location /s2/ {
            gateway_app $stream;
            gateway_thread_pool gw;
            gateway_timeout @{[ms(100)]};
        }
        # Deferred calls held on the event loop, missing and meeting their deadline.
        location /d1/ {
            gateway_app $deferred;
            gateway_timeout @{[ms(100)]};
        }
        location /d2/ {
            gateway_app $deferred;
            gateway_timeout @{[ms(1000)]};
        }
        # The deferred app on the pool: its stream is pulled on the pool's threads.
        location /dp/ {
            gateway_app $deferred;
            gateway_thread_pool gw;
            gateway_timeout @{[ms(1000)]};
        }
        # A 504 that redirects to an app location, which answers 404 (no such route).
        location /e/ {
            gateway_app $stream;
            gateway_thread_pool gw;
            gateway_timeout @{[ms(100)]};
            error_page 504 /err504;
        }
        location = /err504 {
            internal;
            gateway_app $stream;
            gateway_script_name /err504;
        }
CONF

my ($worker) = worker_pids($server);
ok $worker, "the worker: $worker";
my $json = JSON::PP->new;

# The status document, or {} if it cannot be had.
sub status {
    my $c = get($server, '/status');
    return ($c->{status} eq '200' && eval { $json->decode($c->{body}) }) || {};
}

# No call in flight, nothing running or queued on the pool.
sub idle {
    my $doc = status();
    my $pool = $doc->{thread_pools}{gw} // {};
    my @busy = grep { $_ } map { $doc->{apps}{$_}{in_flight} // 0 } qw(stream deferred);
    return %$doc && !@busy && !($pool->{running} // 0) && !($pool->{queued} // 0);
}

sub dropped {
    my $c = get($server, '/s1/dropped');
    return $c->{body} =~ /^(\d+)$/ ? $1 : -1;
}

sub deferred_stats {
    my $c = get($server, '/d2/stats');
    return $c->{body} =~ /^responded=(\d+) released=(\d+) pending=(-?\d+)$/ ? ($1, $2, $3) : ();
}

# Runs the clients of one case, then checks the aftermath. A request's `expect` option is
# a pattern its "STATUS BODY" must match before the reset. %o: streams (how many libstream
# streams the case starts), must_reset (how many of the clients must have reset: the
# others may find nginx closed the connection first).
sub case {
    my ($what, $requests, %o) = @_;
    my $dropped = dropped();
    my @done = run_clients($server, $requests, limit => 30 * $k);
    note describe($_) for @done;
    my $must = $o{must_reset} // scalar @done;
    my @reset = grep { defined $_->{reset} } @done;
    cmp_ok scalar @reset, '>=', $must, "$what: " . scalar(@reset) . ' of ' . scalar(@done)
        . ' clients reset their connection';
    my @expecting = grep { $_->{expect} } @done;
    if (@expecting) {
        my @wrong = grep { "$_->{status} $_->{body}" !~ $_->{expect} } @expecting;
        is scalar @wrong, 0, "$what: " . scalar(@expecting) . ' clients had what they expected before resetting'
            or diag join "\n", map { describe($_) . " (expected $_->{expect})" } @wrong;
    }
    ok wait_until(15 * $k, \&idle), "$what: the worker's calls all finished"
        or diag explain status();
    my $now;
    ok wait_until(5 * $k, sub { ($now = dropped()) == $dropped + ($o{streams} // 0) }),
        "$what: libstream dropped " . ($o{streams} // 0) . " more streams (now $now, was $dropped)";
    my @stats;
    ok wait_until(5 * $k, sub { @stats = deferred_stats(); @stats && $stats[0] == $stats[1] && !$stats[2] }),
        "$what: the deferred app's responses all released, none pending (responded=$stats[0] "
        . "released=$stats[1] pending=$stats[2])";
    is_deeply [worker_pids($server)], [$worker], "$what: the same worker";
    my @bad = bad_log_lines($server);
    is_deeply \@bad, [], "$what: no crash, [alert], panic or request-count error in the log";
    my @served = map { my $c = get($server, $_); "$c->{status} $c->{body}" } '/plain', '/s1/sleep?ms=0', '/d2/now';
    is_deeply \@served, ["200 plain\n", "200 slept 0 ms on the thread_pool\n", "200 now\n"],
        "$what: the worker serves on";
}

subtest 'an offloaded call, reset before gateway_timeout' => sub {
    case('offloaded, reset at 30 ms (deadline 1 s)',
        [map { [0, "/s1/sleep?ms=$sleep", reset_after => secs(30), keepalive => 1] } 1 .. $clients]);
};

subtest 'an offloaded call, reset before and after gateway_timeout' => sub {
    # The ones reset at 150 ms had their 504 (at 100 ms) first, on a kept-alive connection.
    case('offloaded, reset at 30 and 150 ms (deadline 100 ms)', [
        (map { [0, "/s2/sleep?ms=$sleep", reset_after => secs(30), keepalive => 1] } 1 .. $clients / 2),
        (map { [0, "/s2/sleep?ms=$sleep", reset_after => secs(150), keepalive => 1, expect => qr/^504 /] }
            1 .. $clients / 2),
    ], must_reset => $clients / 2);
};

# How many calls the deferred app was told the module stopped waiting for (its cancel).
sub cancelled {
    my $c = get($server, '/d1/cancelled');
    return $c->{body} =~ /^(\d+)$/ ? $1 : -1;
}

subtest 'a deferred call held on the event loop, reset' => sub {
    my $cancelled = cancelled();
    my $gone = () = log_lines($server, qr/client went away during the call/);
    case('deferred, reset at 30 ms (deadline 100 ms)',
        [map { [0, "/d1/defer?ms=$sleep", reset_after => secs(30), keepalive => 1] } 1 .. $clients]);
    case('deferred, reset at 30 ms (deadline 1 s)',
        [map { [0, "/d2/defer?ms=$sleep", reset_after => secs(30), keepalive => 1] } 1 .. $clients]);
    case('deferred, reset at 150 ms, after the 504 (deadline 100 ms)',
        [map { [0, "/d1/defer?ms=$sleep", reset_after => secs(150), keepalive => 1, expect => qr/^504 /] }
            1 .. $clients],
        must_reset => 0);
    # The first two cases' clients left while their calls were out: nginx noticed each reset
    # then, not when the app answered; the third's calls were left at their deadline.
    my $noticed = () = log_lines($server, qr/client went away during the call/);
    is $noticed - $gone, 2 * $clients, 'each reset during a deferred call was noticed while the call was out';
    is cancelled() - $cancelled, 3 * $clients,
        'the app was told of every call the module stopped waiting for (AppDescriptor::cancel), once each';
};

subtest 'mid-stream on a thread pool, reset' => sub {
    case('a 64 MiB stream on the pool, reset after 100 KB',
        [map { [0, '/s1/bytes?size=67108864', reset_bytes => 100_000, expect => qr/^200 abcdefgh/] } 1 .. $clients],
        streams => $clients);
    case('a STREAM_PENDING stream on the pool, reset after 50 KB',
        [map { [0, '/dp/stream?chunks=100000&size=4096&wake_ms=0', reset_bytes => 50_000, expect => qr/^200 abcdefgh/] }
            1 .. $clients]);
    case('a STREAM_PENDING stream on the event loop, reset after 50 KB',
        [map { [0, '/d2/stream?chunks=100000&size=4096&wake_ms=0', reset_bytes => 50_000, expect => qr/^200 abcdefgh/] }
            1 .. $clients]);
};

subtest 'an error_page 504 to an app location, reset' => sub {
    case('error_page 504, reset at 30 and 150 ms (deadline 100 ms)', [
        (map { [0, "/e/sleep?ms=$sleep", reset_after => secs(30), keepalive => 1] } 1 .. $clients / 2),
        # The 504, with the body of the error page: the app's 404 text.
        (map { [0, "/e/sleep?ms=$sleep", reset_after => secs(150), keepalive => 1, expect => qr/^504 no such route\n\z/] }
            1 .. $clients / 2),
    ], must_reset => $clients / 2);
};

finish($server, 'client resets');

done_testing;
