# Reloads and graceful stops with apps in the worker: `nginx -s reload` serves a swapped app
# library (overwritten in place or renamed over) and keeps serving an unchanged one;
# requests in flight during a reload finish on the old worker with the old app code, even
# after the library file was overwritten under it; `nginx -s quit` lets an offloaded call
# in flight finish before nginx exits.
#
# nginx runs with a master process (a reload is the master's job) and one worker. A plain
# Test::More script on Test::Gateway::Server: it uses the Test::Nginx environment
# (TEST_NGINX_BINARY, TEST_NGINX_LOAD_MODULES, TEST_NGINX_APPS, TEST_NGINX_PORT) but writes
# its own nginx.conf into a temporary prefix, starts nginx itself (listening on 127.0.0.1
# only), and always stops it.
use strict;
use warnings;
use Test::More;
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Gateway::Process qw(alive wait_for_exit slurp write_file);
use Test::Gateway::Server qw(
    apps_dir launch start_nginx stop_nginx reload bad_log_lines log_lines get send_request
    read_response describe
);

my $apps = apps_dir() or plan skip_all => 'TEST_NGINX_APPS is not set';

# The app libraries the locations mount are copies the test swaps.
my $libs = tempdir('gateway-017-apps-XXXXXX', TMPDIR => 1, CLEANUP => 1);
copy("$apps/libhello.so", "$libs/app.so") or die "copy: $!";
copy("$apps/libstream.so", "$libs/slow.so") or die "copy: $!";

my $server = start_nginx(name => 'gateway-017', server => <<"CONF");
        # libstream.so, overwritten with libhello.so while a call of it runs.
        location /slow/ {
            gateway_app $libs/slow.so;
            gateway_thread_pool default;
        }
        location = /pid {
            return 200 "\$pid";
        }
        # libhello.so, then libraw_response.so (answers "raw ok" to ?ok), then back.
        location /app/ {
            gateway_app $libs/app.so;
        }
        # The library as built, never swapped: for calls in flight across a reload or a quit.
        location /stream/ {
            gateway_app $apps/libstream.so;
            gateway_thread_pool default;
        }
CONF

# "STATUS BODY" of GET $uri, after what went wrong if anything did.
sub answer {
    my $c = get($server, shift);
    return ($c->{error} ? "($c->{error}) " : '') . "$c->{status} $c->{body}";
}

sub worker_pid {
    my $answer = answer('/pid');
    return $answer =~ /^200 (\d+)$/ ? $1 : "none ($answer)";
}

# `nginx -s reload`, then waits until a new worker runs and $old has begun to shut down (no
# longer accepts connections, though requests in flight may keep it). Returns the pid of
# the worker that answers now, or what went wrong.
sub reload_from {
    my $old = shift;
    my $why = reload($server, command => 1, in_flight => 1);
    return $why if $why;
    my $new = worker_pid();
    return $new eq $old ? "the old worker $old still answers after the reload" : $new;
}

my $worker = worker_pid();
like $worker, qr/^\d+$/, "a worker answers: $worker";

subtest 'a library overwritten in place: the old code until the reload, the new one after' => sub {
    is answer('/app/x?ok'), "200 Hello, World!\n", 'hello serves';
    my $inode = (stat "$libs/app.so")[1];
    # Overwritten, not replaced: the same file now holds the other library. The worker
    # runs a private copy of what it loaded, so this changes nothing until a reload.
    write_file("$libs/app.so", slurp("$apps/libraw_response.so"));
    is((stat "$libs/app.so")[1], $inode, 'the file was overwritten in place (same inode)');
    is answer('/app/x?ok'), "200 Hello, World!\n", 'before the reload: still hello';
    is worker_pid(), $worker, '... from the same worker';

    my $old = $worker;
    $worker = reload_from($old);
    like $worker, qr/^\d+$/, "a new worker after the reload: $worker";
    ok wait_for_exit($old, 10), "the old worker $old exited";
    is answer('/app/x?ok'), "200 raw ok\n", 'after the reload: the new library answers';
    like slurp($server->{log}), qr/gateway: app "raw-response" ready from "\Q$libs\E\/app\.so"/,
        'the new worker reports the new app from the same path';
};

subtest 'a library renamed over the old one: served after the reload' => sub {
    copy("$apps/libhello.so", "$libs/app.so.new") or die "copy: $!";
    rename "$libs/app.so.new", "$libs/app.so" or die "rename: $!";
    is answer('/app/x?ok'), "200 raw ok\n", 'before the reload: still the library loaded';
    my $old = $worker;
    $worker = reload_from($old);
    like $worker, qr/^\d+$/, "a new worker after the reload: $worker";
    ok wait_for_exit($old, 10), "the old worker $old exited";
    is answer('/app/x?ok'), "200 Hello, World!\n", 'after the reload: hello again';
};

subtest 'a reload with nothing changed keeps serving' => sub {
    my $old = $worker;
    $worker = reload_from($old);
    like $worker, qr/^\d+$/, "a new worker after the reload: $worker";
    ok wait_for_exit($old, 10), "the old worker $old exited";
    is answer('/app/x?ok'), "200 Hello, World!\n", 'hello serves' for 1 .. 3;
    is answer('/stream/sleep?ms=0'), "200 slept 0 ms on the thread_pool\n", 'and the offloaded location';
};

subtest 'a request in flight during a reload finishes on the old worker with the old code' => sub {
    my $old = $worker;
    my $inflight = send_request($server, '/slow/sleep?ms=3000');
    sleep 0.5;
    # The library the old worker is running a call of is overwritten under it, in place.
    write_file("$libs/slow.so", slurp("$apps/libhello.so"));
    $worker = reload_from($old);
    like $worker, qr/^\d+$/, "a new worker after the reload: $worker";
    my $new_code_at = time;
    is answer('/slow/sleep?ms=0'), "200 Hello, World!\n", 'new requests get the new code';
    ok alive($old), "the old worker $old is still finishing its request";
    read_response($inflight, 15);
    note 'in flight: ', describe($inflight);
    is "$inflight->{status} $inflight->{body}", "200 slept 3000 ms on the thread_pool\n",
        'the request in flight completes with the old code\'s answer';
    cmp_ok $inflight->{received} // 0, '>', $new_code_at,
        '... after the new worker was already serving';
    ok wait_for_exit($old, 10), "then the old worker $old exited";
};

subtest 'nginx -s quit lets an offloaded call in flight finish' => sub {
    my $inflight = send_request($server, '/stream/sleep?ms=3000');
    sleep 0.5;
    my ($status, $stderr) = launch($server, '-s', 'quit');
    is $status, 0, 'nginx -s quit' or diag $stderr;
    read_response($inflight, 15);
    note 'in flight: ', describe($inflight);
    is "$inflight->{status} $inflight->{body}", "200 slept 3000 ms on the thread_pool\n",
        'the call in flight completes';
    cmp_ok $inflight->{done} // 0, '>=', 3, '... after its full 3 s';
    ok wait_for_exit($server->{pid}, 10), 'then nginx exits';
};

# nginx has quit (or is stopped now, if it did not): finish's checks, and no [error] either.
stop_nginx($server);
is_deeply [bad_log_lines($server)], [], 'no [alert], [crit], crash or panic in the error log';
is_deeply [log_lines($server, qr/\[error\]/)], [], 'no [error] either';
diag "error log:\n" . slurp($server->{log}) unless Test::More->builder->is_passing;

done_testing;
