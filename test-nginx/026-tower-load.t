# A tower app (examples/tower-hello) under load, on one worker: 10,000 requests awaiting a
# one-second tokio timer at once all answer in about a second, without a thread each, while
# an inline SDK location keeps answering at once (the event loop never waits for a future);
# and a 1 GiB streamed body (axum's Body::from_stream) read by a slow client arrives whole
# and right while the worker's resident memory stays within 64 MiB of what it was idle
# (backpressure from the client's socket to the body's stream, as 011-stream-memory.t checks
# for SDK streams).
#
# It measures time and memory, which valgrind distorts: scripts/test-valgrind runs it
# without valgrind (its SKIP list). A plain Test::More script on Test::Gateway::Server.
# Timing bounds are loose on purpose (CI has two slow cores) and scale with patience().
use strict;
use warnings;
use Test::More;
use List::Util qw(max min);
use IO::Select ();
use POSIX ();
use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_RCVBUF inet_aton pack_sockaddr_in);
use Time::HiRes qw(sleep time);
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Gateway::Server qw(
    apps_dir patience fd_limit start_nginx worker_pids thread_count finish run_clients get
    describe
);
use Test::Gateway::Process qw(slurp);

my $apps = apps_dir() or plan skip_all => 'TEST_NGINX_APPS is not set';
my $tower = "$apps/libtower_hello.so";
plan skip_all => "$tower is not built" unless -f $tower;
plan skip_all => 'needs /proc' unless -r '/proc/self/status';

# 10,000 concurrent clients need as many sockets here and in the worker, which inherits this
# process's file limit: the script runs itself again under a shell's `ulimit -S -n` (see
# 020-deferred.t); if the hard limit forbids that, it uses fewer clients and says so.
my $WANT = 10_000;
BEGIN {
    if (!$ENV{GATEWAY_026_ULIMIT} && Test::Gateway::Server::fd_limit() < 12_000) {
        $ENV{GATEWAY_026_ULIMIT} = 1;
        exec '/bin/sh', '-c', 'ulimit -S -n 12000 2>/dev/null; exec "$@"', 'sh', $^X, $0, @ARGV;
    }
}

my $k = patience();

my $locations = <<"CONF";
        location /t/ {
            gateway_app $tower;
        }
        location /h/ {
            gateway_app $apps/libhello.so;
        }
CONF

subtest "$WANT requests sleeping a second at once on one worker, an inline location answering meanwhile" => sub {
    my $limit = fd_limit();
    my $n = min($WANT, $limit - 500);
    note $n < $WANT ? "fd limit $limit: $n concurrent calls instead of $WANT" : "fd limit $limit";
    # nginx closes connections still waiting for their request once fewer than 1/16 of its
    # worker_connections are free ("worker_connections are not enough"): room to spare.
    my $server = start_nginx(name => 'gateway-026', server => $locations, connections => int($n * 1.125) + 300,
        listen => 'backlog=4096', events => '    multi_accept on;');
    my ($worker) = worker_pids($server);
    get($server, '/t/hello');    # the runtime is up
    my $threads_before = thread_count($worker);
    my @threads;
    # The inline requests come from a process of their own, every 50 ms for 2 s: this one is
    # busy with its 10,000 clients, and would delay reading their answers.
    my $inline = inline_requests($server, 40, 0.05);
    # The sleeps go out over half a second (a client can only connect so fast).
    my @clients = run_clients($server, [
        (map { [0.5 * $_ / $n, '/t/sleep?ms=1000'] } 0 .. $n - 1),
        (map { my $at = 0.3 * $_; [$at, sub { push @threads, thread_count($worker) }] } 1 .. 4),
    ], limit => 30 * $k);
    my @wrong = grep { "$_->{status} $_->{body}" ne "200 slept 1000 ms\n" } @clients;
    is scalar @wrong, 0, "all $n sleeps answered 200"
        or diag join "\n", map { describe($_) } @wrong[0 .. min(9, $#wrong)];
    my $sent = max(map { $_->{sent} // 0 } @clients);
    my $last = max(map { $_->{finished} // 99 } @clients);
    my $slowest = max(map { $_->{done} // 99 } @clients);
    note sprintf 'sent within %.3f s; the last answered %.3f s after the first send; '
        . 'the slowest took %.3f s from its send', $sent, $last, $slowest;
    cmp_ok min(map { $_->{done} // 0 } @clients), '>=', 1, 'none before its second';
    cmp_ok $slowest, '<', 1 + 2 * $k, sprintf 'each within %.1f s of its send', 1 + 2 * $k;
    cmp_ok $last, '<', 5 * $k, 'all within 5 s of the first send';

    my @inline = $inline->();
    my @bad = grep { $_->[1] ne "200 Hello, World!\n" } @inline;
    is scalar @bad, 0, scalar(@inline) . ' inline SDK requests answered meanwhile'
        or diag join "\n", map { "$_->[1] after $_->[0] s" } @bad;
    my @latency = sort { $a <=> $b } map { $_->[0] } @inline;
    note sprintf 'inline latency (connect to close) while the sleeps were pending: median %.1f ms, '
        . 'max %.1f ms', 1000 * $latency[@latency / 2], 1000 * $latency[-1];
    # Loose: two cores, shared with this client (and on CI, with more).
    cmp_ok $latency[@latency / 2], '<', 0.05 * $k, '... at once (the event loop never waits for a future): the median';
    cmp_ok $latency[-1], '<', 0.5 * $k, '... and the slowest';
    my $during = max(@threads);
    note "worker threads: $threads_before before, at most $during during";
    cmp_ok $during, '<=', $threads_before + 1, 'no thread per request';
    finish($server, 'concurrent sleeps');
};

# Sends $count GET /h/ one after the other, $every seconds apart, from a child process, each
# on a blocking connection of its own; returns a sub that waits for the child and gives
# [seconds from connect to close, "status body"] for each.
sub inline_requests {
    my ($server, $count, $every) = @_;
    pipe my $from_child, my $to_parent or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        close $from_child;
        my $start = time;
        for my $i (1 .. $count) {
            my $wait = $start + $every * $i - time;
            sleep $wait if $wait > 0;
            my $t0 = time;
            my ($answer, $raw) = ('none', '');
            my $sock;
            if (socket($sock, PF_INET, SOCK_STREAM, 0)
                && connect($sock, pack_sockaddr_in($server->{port}, inet_aton('127.0.0.1')))) {
                syswrite $sock, "GET /h/ HTTP/1.0\r\nHost: localhost\r\n\r\n";
                while (sysread $sock, my $buf, 65536) { $raw .= $buf }
                $answer = "$1 $2" if $raw =~ m{\AHTTP/1\.\d (\d+)[^\n]*\n.*?\r\n\r\n(.*)\z}s;
                $answer =~ s/\n/\\n/g;
            }
            printf $to_parent "%.6f %s\n", time - $t0, $answer;
        }
        close $to_parent;
        POSIX::_exit(0);
    }
    close $to_parent;
    return sub {
        my @lines = <$from_child>;
        waitpid $pid, 0;
        return map { my ($t, $answer) = /^(\S+) (.*)$/; $answer =~ s/\\n/\n/g; [$t, $answer] } @lines;
    };
}

subtest '1 GiB streamed to a slow client in bounded worker memory' => sub {
    my $server = start_nginx(name => 'gateway-026', server => $locations, connections => 64);
    my ($worker) = worker_pids($server);
    get($server, '/t/hello');    # the runtime is up
    my $rss = sub { (slurp("/proc/$worker/status") =~ /^VmRSS:\s+(\d+) kB/m)[0] // 0 };
    my $idle = $rss->();
    # 16,384 chunks of 64 KiB, chunk k's byte i the letter (k + i) % 26 (see tower-hello).
    my $chunks = 16384;
    socket my $sock, PF_INET, SOCK_STREAM, 0 or die "socket: $!";
    setsockopt $sock, SOL_SOCKET, SO_RCVBUF, 16384;
    connect $sock, pack_sockaddr_in($server->{port}, inet_aton('127.0.0.1')) or die "connect: $!";
    syswrite $sock, "GET /t/stream?n=$chunks&size=65536 HTTP/1.0\r\nHost: localhost\r\n\r\n";
    my $letters = join('', 'a' .. 'z') x 2522;    # 65,572 bytes: any chunk from any letter
    my ($raw, $offset, $bad, $peak, $reads, $start) = ('', 0, undef, 0, 0, time);
    my $select = IO::Select->new($sock);
    my ($in_body, $since_pause) = (0, 0);
    while ($select->can_read(30 * $k)) {
        my $n = sysread $sock, my $buf, 65536;
        last unless $n;
        if (!$in_body) {
            $raw .= $buf;
            next unless $raw =~ /\r\n\r\n/;
            ($buf) = $raw =~ /\r\n\r\n(.*)\z/s;
            $in_body = 1;
        }
        while (length $buf && !defined $bad) {
            my ($chunk, $i) = (int($offset / 65536), $offset % 65536);
            my $take = min(65536 - $i, length $buf);
            $bad = $offset if substr($buf, 0, $take, '') ne substr($letters, ($chunk + $i) % 26, $take);
            $offset += $take;
        }
        $offset += length $buf;
        $peak = max($peak, $rss->()) if ++$reads % 16 == 0;
        # A pause per 64 KiB read: slower than nginx can send, as in 011-stream-memory.t.
        $since_pause += $n;
        if ($since_pause >= 65536) {
            $since_pause = 0;
            sleep 0.001;
        }
    }
    close $sock;
    note sprintf '%d MiB in %.1f s, worker RSS %d KiB idle, %d KiB at most', $offset >> 20, time - $start, $idle, $peak;
    like $raw, qr{\AHTTP/1\.\d 200 }, 'the stream: 200';
    is $offset, $chunks * 65536, '... 1 GiB arrived';
    ok !defined $bad, '... every byte right' or diag "first wrong byte near $bad";
    cmp_ok $peak - $idle, '<', 64 * 1024, '... the worker grew by less than 64 MiB';
    finish($server, 'large stream');
};

done_testing;
