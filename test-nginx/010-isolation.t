# An app's failures stay with the request that met them: a panicking handler or stream,
# a failing stream, an invalid response, a client that goes away mid-stream or stops
# reading: each is logged, the stream is dropped, and the same worker process goes on
# serving. nginx runs with a master process here, so a worker that died would be
# replaced by one with another pid (and the master would log "[alert] ... exited on
# signal"): blocks note the worker's pid before their requests, and every /pid answer
# after them must name that same worker.
#
# Checks that need raw connections (aborted or stalled clients, two at once) live in
# the subs below, called from "--- init" once nginx runs with the block's config.
use Test::Nginx::Socket 'no_plan';

use IO::Select ();
use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_RCVBUF inet_aton pack_sockaddr_in);
use Time::HiRes ();

master_on();
workers(1);

# Blocks with several requests check the error log after each response.
check_accum_error_log();

# The worker's pid when the block started: blocks whose "--- init" calls note_worker()
# then check that every "pid N" answer comes from that same worker.
my $start_pid;
add_block_preprocessor(sub { undef $start_pid });
add_response_body_check(sub {
    my ($block, $body, $req_idx, $rep, $dry_run) = @_;
    return if $dry_run || !defined $start_pid || !defined $body || $body !~ /\Apid (\d+)\n\z/;
    Test::More::is($1, $start_pid,
        $block->name . " - the worker the block started with answers (req $req_idx)");
});

sub note_worker {
    my $answer = fetch('/pid') // '';
    $start_pid = $answer =~ /\Apid (\d+)\n\z/ ? $1 : "none (/pid said \"$answer\")";
}

# The first $n bytes of /s/bytes: "abc..z" over and over, restarting with every 64 KiB chunk.
sub pattern {
    my $n = shift;
    my $chunk = join '', map { chr(97 + $_ % 26) } 0 .. 65535;
    return substr $chunk x (int($n / 65536) + 1), 0, $n;
}

# A connected socket to nginx; with $rcvbuf, a small receive buffer set before connecting.
sub connect_nginx {
    my $rcvbuf = shift;
    socket my $sock, PF_INET, SOCK_STREAM, 0 or die "socket: $!";
    setsockopt $sock, SOL_SOCKET, SO_RCVBUF, $rcvbuf or die "SO_RCVBUF: $!" if $rcvbuf;
    connect $sock, pack_sockaddr_in($Test::Nginx::Util::ServerPortForClient,
                                    inet_aton($Test::Nginx::Util::ServerAddr))
        or die "connect: $!";
    binmode $sock;
    return $sock;
}

# Reads from $sock until it has $want more bytes (undef: until EOF) or $timeout passes.
sub read_some {
    my ($sock, $want, $timeout) = @_;
    my $select = IO::Select->new($sock);
    my $deadline = Time::HiRes::time() + ($timeout // 10);
    my ($data, $eof) = ('', 0);
    while (!defined $want || length $data < $want) {
        my $left = $deadline - Time::HiRes::time();
        last if $left <= 0 || !$select->can_read($left);
        my $n = sysread $sock, my $buf, 65536;
        if (!$n) {
            $eof = 1;
            last;
        }
        $data .= $buf;
    }
    return ($data, $eof);
}

# The body of GET $uri on a new HTTP/1.0 connection.
sub fetch {
    my $uri = shift;
    my $sock = connect_nginx();
    syswrite $sock, "GET $uri HTTP/1.0\r\nHost: localhost\r\n\r\n";
    my ($raw) = read_some($sock, undef, 10);
    close $sock;
    return $raw =~ /\r\n\r\n(.*)\z/s ? $1 : undef;
}

# Asks /s/dropped until it says $want, for up to 5 s; returns the last answer and the wait.
sub await_dropped {
    my $want = shift;
    my $start = Time::HiRes::time();
    my $dropped;
    while (1) {
        ($dropped = fetch('/s/dropped') // '') =~ s/\n\z//;
        last if $dropped eq $want || Time::HiRes::time() - $start > 5;
        Time::HiRes::sleep(0.05);
    }
    return ($dropped, Time::HiRes::time() - $start);
}

# A client reads 1 MB of a 1 GB stream and closes the connection: the stream is dropped,
# by the same worker, which goes on serving.
sub abandon_stream {
    my $pid = fetch('/pid');
    (my $before = fetch('/s/dropped') // '') =~ s/\n\z//;
    my $sock = connect_nginx();
    syswrite $sock, "GET /s/bytes?size=1000000000 HTTP/1.1\r\nHost: localhost\r\n\r\n";
    my ($got) = read_some($sock, 1024 * 1024, 10);
    close $sock;
    my ($dropped, $waited) = await_dropped($before + 1);
    Test::More::diag(sprintf 'abandoned /s/bytes?size=1000000000 after reading %d bytes; '
        . '/s/dropped went from %s to %s within %.3f s', length $got, $before, $dropped, $waited);
    Test::More::cmp_ok(length $got, '>=', 1024 * 1024, 'abort: 1 MB of the stream read first');
    Test::More::is($dropped, $before + 1, 'abort: the abandoned stream is dropped');
    Test::More::is(fetch('/pid'), $pid, 'abort: the same worker answers afterwards');
    Test::More::is(fetch('/hello'), "Hello, World!\n", 'abort: and serves other apps');
}

# A client stops reading a large stream: send_timeout ends the request, the stream is
# dropped, and the worker goes on serving.
sub stall_stream {
    my $pid = fetch('/pid');
    my $sock = connect_nginx(4096);
    syswrite $sock, "GET /s/bytes?size=1000000000 HTTP/1.1\r\nHost: localhost\r\n\r\n";
    my ($got) = read_some($sock, 65536, 10);
    my ($dropped, $waited) = await_dropped(1);
    Test::More::diag(sprintf 'stalled /s/bytes?size=1000000000 after reading %d bytes; '
        . '/s/dropped said %s after %.3f s', length $got, $dropped, $waited);
    Test::More::is($dropped, 1, 'stall: the stalled stream is dropped after send_timeout');
    my ($rest, $eof) = read_some($sock, undef, 5);
    Test::More::ok($eof, 'stall: nginx closed the connection');
    Test::More::cmp_ok(length($got) + length($rest), '<', 1000000000, 'stall: the body was cut short');
    close $sock;
    Test::More::is(fetch('/pid'), $pid, 'stall: the same worker answers afterwards');
}

# While one client is in the middle of a large stream, other requests panic and fail on
# the same worker; the first stream still arrives whole.
sub panic_beside_a_stream {
    my $size = 16_000_000;
    my $sock = connect_nginx();
    syswrite $sock, "GET /s/bytes?size=$size HTTP/1.0\r\nHost: localhost\r\n\r\n";
    my ($head) = read_some($sock, 256 * 1024, 10);
    Test::More::is(fetch('/s/panic?after=2'), "chunk 0\nchunk 1\n", 'beside: a stream panics');
    Test::More::like(fetch('/s/panic') // '', qr{<h1>500 Internal Server Error</h1>},
        'beside: a handler panics');
    Test::More::is(fetch('/s/fail?after=1'), "chunk 0\n", 'beside: a stream fails');
    Test::More::like(fetch('/raw?kind') // '', qr{<h1>500 Internal Server Error</h1>},
        'beside: an invalid response');
    my ($rest, $eof) = read_some($sock, undef, 20);
    close $sock;
    my ($body) = ($head . $rest) =~ /\r\n\r\n(.*)\z/s;
    Test::More::ok($eof, 'beside: the first stream ended');
    Test::More::is(length($body // ''), $size, "beside: the first stream has all its $size bytes");
    Test::More::ok(($body // '') eq pattern($size), 'beside: ... and the right ones');
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a panicking handler: 500, the panic logged, the same worker goes on
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
location = /pid {
    return 200 "pid $pid\n";
}
--- init
main::note_worker();
--- request eval
["GET /s/panic", "GET /hello", "GET /pid"]
--- error_code eval
[500, 200, 200]
--- response_body_like eval
["<h1>500 Internal Server Error</h1>", "^Hello, World!\n\$", "^pid \\d+\n\$"]
--- error_log eval
qr{\[error\] .*gateway: app "stream" failed: handler panicked at examples/stream/src/lib\.rs:\d+:\d+: the handler gave up \(request [0-9a-f]{32}\)}
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 2: a panicking handler's 500 can be replaced with error_page
--- config
error_page 500 /oops.txt;
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- user_files
>>> oops.txt
our own 500 page
--- request
GET /s/panic
--- error_code: 500
--- response_body
our own 500 page
--- error_log eval
qr{gateway: app "stream" failed: handler panicked at examples/stream/src/lib\.rs:\d+:\d+: the handler gave up}
--- no_error_log
[alert]



=== TEST 3: twenty panics in a row, and the same worker still serves
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location = /pid {
    return 200 "pid $pid\n";
}
--- init
main::note_worker();
--- request eval
[("GET /s/panic") x 20, "GET /s/lines?n=2", "GET /pid"]
--- error_code eval
[(500) x 20, 200, 200]
--- response_body_like eval
[("<h1>500 Internal Server Error</h1>") x 20, "^line 1\nline 2\n\$", "^pid \\d+\n\$"]
--- error_log eval
qr/handler panicked/
--- no_error_log
[alert]
[crit]



=== TEST 4: a panicking stream is cut short and dropped, the same worker goes on
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location = /pid {
    return 200 "pid $pid\n";
}
--- init
main::note_worker();
--- request eval
["GET /s/panic?after=3 HTTP/1.0", "GET /s/dropped", "GET /pid"]
--- response_body_like eval
["^chunk 0\nchunk 1\nchunk 2\n\$", "^1\n\$", "^pid \\d+\n\$"]
--- error_log eval
qr{\[error\] .*gateway: app "stream" stream failed after 24 bytes, the response is cut short: stream panicked at examples/stream/src/lib\.rs:\d+:\d+: the stream gave up after 3 chunks \(request [0-9a-f]{32}\)}
--- no_error_log
[alert]
[crit]



=== TEST 5: a failing stream is cut short and dropped, the same worker goes on
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location = /pid {
    return 200 "pid $pid\n";
}
--- init
main::note_worker();
--- request eval
["GET /s/fail?after=1 HTTP/1.0", "GET /s/dropped", "GET /pid"]
--- response_body_like eval
["^chunk 0\n\$", "^1\n\$", "^pid \\d+\n\$"]
--- error_log eval
qr{\[error\] .*gateway: app "stream" stream failed after 8 bytes, the response is cut short: stream failed: the data source broke \(request [0-9a-f]{32}\)}
--- no_error_log
[alert]
[crit]



=== TEST 6: invalid responses, one after the other, and the same worker goes on
--- config
location /raw {
    gateway_app $TEST_NGINX_APPS/libraw_response.so;
}
location = /pid {
    return 200 "pid $pid\n";
}
--- init
main::note_worker();
--- request eval
["GET /raw?kind", "GET /raw?nostream", "GET /raw?status", "GET /raw?crlf", "GET /raw?ok", "GET /pid"]
--- error_code eval
[500, 500, 500, 500, 200, 200]
--- response_body_like eval
[("<h1>500 Internal Server Error</h1>") x 4, "^raw ok\n\$", "^pid \\d+\n\$"]
--- error_log eval
qr/gateway: app "raw-response" returned an invalid response: body kind 42 is unknown to this module/
--- no_error_log
[alert]
[crit]



=== TEST 7: a client that goes away mid-stream: the stream is dropped, the worker lives on
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
location = /pid {
    return 200 "pid $pid\n";
}
--- init
main::abandon_stream();
--- request
GET /s/dropped
--- response_body
1
--- no_error_log
[alert]
[crit]
[error]



=== TEST 8: a client that stops reading: send_timeout ends the stream, which is dropped
--- config
send_timeout 1s;
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location = /pid {
    return 200 "pid $pid\n";
}
--- init
main::stall_stream();
--- request
GET /s/dropped
--- response_body
1
--- error_log
client timed out while a stream was sent
--- no_error_log
[alert]
[crit]



=== TEST 9: panics, failures and invalid responses beside a stream in progress
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location /raw {
    gateway_app $TEST_NGINX_APPS/libraw_response.so;
}
location = /pid {
    return 200 "pid $pid\n";
}
--- init
main::note_worker();
main::panic_beside_a_stream();
--- request eval
["GET /s/dropped", "GET /pid"]
--- response_body_like eval
["^3\n\$", "^pid \\d+\n\$"]
--- no_error_log
[alert]
[crit]
