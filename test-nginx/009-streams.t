# Streamed bodies (examples/stream): chunked on HTTP/1.1, close-delimited on HTTP/1.0,
# with a declared Content-Length when the app gives one; large streams arrive intact,
# server-sent events arrive as they are produced, nginx's filters (gzip, add_header,
# limit_rate) apply, HEAD never pulls, and a stream that fails, panics or lies about its
# length is cut short: the client gets what was produced, then the connection closes
# without the end of the body. /s/dropped counts the streams the worker has dropped.
#
# A few checks need the raw bytes or their timing, which the data sections cannot
# express: the blocks' "--- init" calls a sub below (nginx is running with the block's
# config by then), and the block's own request then asks /s/dropped.
use Test::Nginx::Socket 'no_plan';

use IO::Select ();
use IO::Socket::INET ();
use Time::HiRes ();

# Blocks with several requests check the error log after each response.
check_accum_error_log();

# The first $n bytes of /s/bytes: "abc..z" over and over, restarting with every 64 KiB chunk.
sub pattern {
    my $n = shift;
    my $chunk = join '', map { chr(97 + $_ % 26) } 0 .. 65535;
    return substr $chunk x (int($n / 65536) + 1), 0, $n;
}

# Sends $request on a new connection and reads until nginx closes it (10 s at most).
# Returns the raw response, whether nginx closed the connection, and for each marker the
# seconds after sending at which it had arrived.
sub exchange {
    my ($request, @markers) = @_;
    my $sock = IO::Socket::INET->new(
        PeerAddr => $Test::Nginx::Util::ServerAddr,
        PeerPort => $Test::Nginx::Util::ServerPortForClient,
        Proto    => 'tcp',
        Timeout  => 5,
    ) or return ('', 0, {});
    my $start = Time::HiRes::time();
    syswrite $sock, $request;
    my $select = IO::Select->new($sock);
    my ($raw, $closed, %at) = ('', 0);
    while (Time::HiRes::time() - $start < 10 && $select->can_read(10)) {
        my $n = sysread $sock, my $buf, 65536;
        if (!$n) {
            $closed = defined $n;
            last;
        }
        $raw .= $buf;
        for my $marker (@markers) {
            $at{$marker} //= Time::HiRes::time() - $start if index($raw, $marker) >= 0;
        }
    }
    close $sock;
    return ($raw, $closed, \%at);
}

sub get_request {
    my ($uri, $version) = @_;
    return "GET $uri HTTP/" . ($version // '1.1') . "\r\nHost: localhost\r\nConnection: close\r\n\r\n";
}

# A chunked response cut short: status 200, the chunks carry $expected, then the
# connection closes at a chunk boundary without the last chunk.
sub cut_short_chunked {
    my ($uri, $expected) = @_;
    my ($raw, $closed) = exchange(get_request($uri));
    my ($head, $body) = $raw =~ /\A(.*?\r\n)\r\n(.*)\z/s;
    Test::More::like($head // '', qr{\AHTTP/1\.1 200 OK\r\n}, "$uri: status 200");
    Test::More::like($head // '', qr{\r\nTransfer-Encoding: chunked\r\n}i, "$uri: chunked");
    my ($decoded, $last_chunk) = ('', 0);
    $body //= '';
    pos($body) = 0;
    while ($body =~ /\G([0-9A-Fa-f]+)\r\n/gc) {
        my $size = hex $1;
        if ($size == 0) {
            $last_chunk = 1;
            last;
        }
        last if length($body) - pos($body) < $size + 2;
        $decoded .= substr $body, pos($body), $size;
        pos($body) += $size;
        last unless $body =~ /\G\r\n/gc;
    }
    my $rest = substr $body, pos($body) // 0;
    Test::More::is($decoded, $expected, "$uri: the chunks sent before the cut");
    Test::More::ok(!$last_chunk, "$uri: no last chunk");
    Test::More::is($rest, '', "$uri: the body stops at a chunk boundary");
    Test::More::ok($closed, "$uri: nginx closed the connection");
}

# A response with Content-Length $declared cut short: fewer bytes than declared, all of
# them the start of the pattern (exactly $expected_length of them when given), then
# the connection closes.
sub cut_short_length {
    my ($uri, $declared, $expected_length) = @_;
    my ($raw, $closed) = exchange(get_request($uri));
    my ($head, $body) = $raw =~ /\A(.*?\r\n)\r\n(.*)\z/s;
    $body //= '';
    Test::More::like($head // '', qr{\AHTTP/1\.1 200 OK\r\n}, "$uri: status 200");
    Test::More::like($head // '', qr{\r\nContent-Length: $declared\r\n}i, "$uri: Content-Length $declared");
    Test::More::cmp_ok(length $body, '<', $declared, "$uri: fewer bytes than declared");
    Test::More::is(length $body, $expected_length, "$uri: $expected_length bytes")
        if defined $expected_length;
    Test::More::ok($body eq pattern(length $body), "$uri: the bytes sent are the stream's");
    Test::More::ok($closed, "$uri: nginx closed the connection");
}

# Server-sent events reach the client as they are produced, not when the stream ends.
sub events_as_sent {
    my @events = map { "data: event $_\n\n" } 1 .. 3;
    my ($raw, $closed, $at) = exchange(get_request('/s/events?n=3&interval_ms=700'), @events);
    my @t = map { $at->{$_} } @events;
    Test::More::diag(sprintf 'SSE /s/events?n=3&interval_ms=700: events arrived after %s s',
        join ', ', map { defined $_ ? sprintf('%.3f', $_) : 'never' } @t);
    Test::More::ok(defined $t[0] && $t[0] < 0.5, 'SSE: the first event arrives within 0.5 s');
    Test::More::ok(defined $t[2] && $t[2] >= 1.2, 'SSE: the third arrives 1.2 s or more after the request');
    Test::More::ok(defined $t[1] && defined $t[2] && $t[0] < $t[1] && $t[1] < $t[2],
        'SSE: one after the other');
    Test::More::like($raw, qr{\r\n0\r\n\r\n\z}, 'SSE: the stream ends with the last chunk');
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a stream without Content-Length is chunked on HTTP/1.1
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- request
GET /s/lines?n=3
--- response_headers
Transfer-Encoding: chunked
!Content-Length
--- response_body
line 1
line 2
line 3
--- no_error_log
[error]
[alert]



=== TEST 2: ... and close-delimited on HTTP/1.0
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- raw_request eval
"GET /s/lines?n=3 HTTP/1.0\r\nHost: localhost\r\n\r\n"
--- raw_response_headers_like: ^HTTP/1\.1 200 OK\r\n(?:[^\r\n]+\r\n)*Connection: close\r\n
--- response_headers
!Transfer-Encoding
!Content-Length
--- response_body
line 1
line 2
line 3
--- no_error_log
[error]



=== TEST 3: an empty stream
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- request
GET /s/lines?n=0
--- response_headers
Transfer-Encoding: chunked
--- response_body
--- no_error_log
[error]



=== TEST 4: the connection stays alive after streams, and each ended stream is dropped
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- pipelined_requests eval
["GET /s/lines?n=2", "GET /s/bytes?size=5&declare=1", "GET /s/dropped"]
--- response_headers eval
["Transfer-Encoding: chunked", "Content-Length: 5", ""]
--- response_body eval
["line 1\nline 2\n", "abcde", "2\n"]
--- no_error_log
[error]



=== TEST 5: a 1 MB stream arrives intact, chunked
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- request
GET /s/bytes?size=1000003
--- response_headers
Transfer-Encoding: chunked
Content-Type: application/octet-stream
--- response_body eval
main::pattern(1000003)
--- no_error_log
[error]



=== TEST 6: ... with its declared Content-Length
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- request
GET /s/bytes?size=1000003&declare=1
--- response_headers
Content-Length: 1000003
!Transfer-Encoding
--- response_body eval
main::pattern(1000003)
--- no_error_log
[error]



=== TEST 7: ... and over HTTP/1.0
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- raw_request eval
"GET /s/bytes?size=1000003 HTTP/1.0\r\nHost: localhost\r\n\r\n"
--- response_headers
!Content-Length
!Transfer-Encoding
--- response_body eval
main::pattern(1000003)
--- no_error_log
[error]



=== TEST 8: a stream longer than its Content-Length is cut short
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- init
main::cut_short_length('/s/bytes?size=50000&declare=40000', 40000);
--- request
GET /s/dropped
--- response_body
1
--- error_log eval
qr/\[error\] .*gateway: app "stream" streamed more than the 40000 bytes its Content-Length declared; the response is cut short \(request [0-9a-f]{32}\)/
--- no_error_log
[alert]



=== TEST 9: a stream shorter than its Content-Length is cut short after all it produced
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- init
main::cut_short_length('/s/bytes?size=10&declare=100', 100, 10);
--- request
GET /s/dropped
--- response_body
1
--- error_log eval
qr/\[error\] .*gateway: app "stream" ended its stream after 10 of the 100 bytes its Content-Length declared; the response is cut short \(request [0-9a-f]{32}\)/
--- no_error_log
[alert]



=== TEST 10: server-sent events: the event-stream type and every event
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- request
GET /s/events?n=3&interval_ms=10
--- response_headers
Content-Type: text/event-stream
Transfer-Encoding: chunked
--- response_body eval
"data: event 1\n\ndata: event 2\n\ndata: event 3\n\n"
--- no_error_log
[error]



=== TEST 11: server-sent events arrive as they are sent, not when the stream ends
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- init
main::events_as_sent();
--- request
GET /s/dropped
--- response_body
1
--- no_error_log
[error]
[alert]



=== TEST 12: a failing stream over HTTP/1.0: the chunks before the error, the close, and the drop
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- request eval
["GET /s/fail?after=2 HTTP/1.0", "GET /s/dropped"]
--- response_headers eval
["!Content-Length\n!Transfer-Encoding", ""]
--- response_body eval
["chunk 0\nchunk 1\n", "1\n"]
--- error_log eval
qr/\[error\] .*gateway: app "stream" stream failed after 16 bytes, the response is cut short: stream failed: the data source broke \(request [0-9a-f]{32}\)/
--- no_error_log
[alert]



=== TEST 13: a failing stream over HTTP/1.1 ends without the last chunk, and is dropped
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- init
main::cut_short_chunked('/s/fail?after=2', "chunk 0\nchunk 1\n");
--- request
GET /s/dropped
--- response_body
1
--- error_log eval
qr/\[error\] .*gateway: app "stream" stream failed after 16 bytes, the response is cut short: stream failed: the data source broke \(request [0-9a-f]{32}\)/
--- no_error_log
[alert]



=== TEST 14: a stream failing before its first chunk: the header, then the close
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- init
main::cut_short_chunked('/s/fail?after=0', '');
--- request
GET /s/dropped
--- response_body
1
--- error_log eval
qr/\[error\] .*gateway: app "stream" stream failed after 0 bytes, the response is cut short: stream failed: the data source broke \(request [0-9a-f]{32}\)/



=== TEST 15: a panicking stream over HTTP/1.0: the chunks before the panic, the close, and the drop
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- request eval
["GET /s/panic?after=2 HTTP/1.0", "GET /s/dropped"]
--- response_headers eval
["!Content-Length\n!Transfer-Encoding", ""]
--- response_body eval
["chunk 0\nchunk 1\n", "1\n"]
--- error_log eval
qr{\[error\] .*gateway: app "stream" stream failed after 16 bytes, the response is cut short: stream panicked at examples/stream/src/lib\.rs:\d+:\d+: the stream gave up after 2 chunks \(request [0-9a-f]{32}\)}
--- no_error_log
[alert]



=== TEST 16: a panicking stream over HTTP/1.1 ends without the last chunk, and is dropped
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- init
main::cut_short_chunked('/s/panic?after=2', "chunk 0\nchunk 1\n");
--- request
GET /s/dropped
--- response_body
1
--- error_log eval
qr{\[error\] .*gateway: app "stream" stream failed after 16 bytes, the response is cut short: stream panicked at examples/stream/src/lib\.rs:\d+:\d+: the stream gave up after 2 chunks \(request [0-9a-f]{32}\)}
--- no_error_log
[alert]



=== TEST 17: HEAD of a stream: the headers, no body, and the stream is dropped unread
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- request eval
["HEAD /s/lines?n=3", "HEAD /s/bytes?size=1000&declare=1", "GET /s/dropped"]
--- response_headers eval
["!Content-Length\n!Transfer-Encoding", "Content-Length: 1000\nContent-Type: application/octet-stream", ""]
--- response_body eval
["", "", "2\n"]
--- no_error_log
[error]
[alert]



=== TEST 18: nginx's gzip filter compresses a stream
--- config
location /s/ {
    gzip on;
    gzip_types application/octet-stream;
    gzip_min_length 1;
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- more_headers
Accept-Encoding: gzip
--- request
GET /s/bytes?size=100000
--- response_headers
Content-Encoding: gzip
!Content-Length
--- response_body_filters eval
sub {
    require IO::Uncompress::Gunzip;
    IO::Uncompress::Gunzip::gunzip(\$_[0] => \my $out)
        or return "gunzip failed: $IO::Uncompress::Gunzip::GunzipError";
    $out;
}
--- response_body eval
main::pattern(100000)
--- no_error_log
[error]



=== TEST 19: gzip drops a declared Content-Length, which no longer holds
--- config
location /s/ {
    gzip on;
    gzip_types application/octet-stream;
    gzip_min_length 1;
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- more_headers
Accept-Encoding: gzip
--- request
GET /s/bytes?size=100000&declare=1
--- response_headers
Content-Encoding: gzip
!Content-Length
--- response_body_filters eval
sub {
    require IO::Uncompress::Gunzip;
    IO::Uncompress::Gunzip::gunzip(\$_[0] => \my $out)
        or return "gunzip failed: $IO::Uncompress::Gunzip::GunzipError";
    $out;
}
--- response_body eval
main::pattern(100000)
--- no_error_log
[error]



=== TEST 20: add_header applies to streams and events
--- config
location /s/ {
    add_header X-Added yes;
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- pipelined_requests eval
["GET /s/lines?n=1", "GET /s/events?n=1"]
--- response_headers eval
["X-Added: yes", "X-Added: yes\nContent-Type: text/event-stream"]
--- response_body eval
["line 1\n", "data: event 1\n\n"]



=== TEST 21: limit_rate holds a stream back without breaking it
--- config
location /s/ {
    limit_rate 256k;
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- request
GET /s/bytes?size=400000
--- timeout: 10
--- response_body eval
main::pattern(400000)
--- no_error_log
[error]
[alert]
client timed out



=== TEST 22: several large streams back to back on one connection
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- pipelined_requests eval
["GET /s/bytes?size=300000", "GET /s/bytes?size=300001&declare=1", "GET /s/bytes?size=65536", "GET /s/dropped"]
--- response_body eval
[main::pattern(300000), main::pattern(300001), main::pattern(65536), "3\n"]
--- no_error_log
[error]
