# Request bodies: libupload reads the body through the SDK's streaming reader and answers
# "<length> <sha256 hex>"; a GET to it answers how many bodies this worker's app has
# digested, which shows whether it was called. libenviron shows CONTENT_LENGTH. Bodies in
# memory, spilled to a temporary file, read in parts, chunked, too large, and abandoned.
use Test::Nginx::Socket 'no_plan';
use Digest::SHA ();

# $n bytes without whitespace (the harness trims request bodies) in which no stretch
# repeats, so a part read twice, skipped or out of order changes the digest.
sub body_of {
    my $n = shift;
    my $text = join '', map { sprintf '%07x;', $_ } 0 .. int($n / 8);
    return substr $text, 0, $n;
}

# What libupload answers for $body.
sub digest_line {
    my $body = shift;
    return length($body) . ' ' . Digest::SHA::sha256_hex($body) . "\n";
}

# Every byte value, up and down.
sub all_bytes {
    return join '', map { chr } 0 .. 255, reverse 0 .. 255;
}

# $body in chunked encoding, in chunks of $size bytes.
sub chunked {
    my ($body, $size) = @_;
    my $out = '';
    for (my $at = 0; $at < length $body; $at += $size) {
        my $chunk = substr $body, $at, $size;
        $out .= sprintf("%x\r\n", length $chunk) . "$chunk\r\n";
    }
    return "${out}0\r\n\r\n";
}

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: a small POST and a small PUT are read whole, and counted
--- config
location /upload {
    gateway_app $TEST_NGINX_APPS/libupload.so;
}
--- pipelined_requests eval
["POST /upload\nhello, upload", "PUT /upload\nput body", "GET /upload"]
--- response_body eval
[main::digest_line("hello, upload"), main::digest_line("put body"), "2\n"]
--- no_error_log
[error]



=== TEST 2: every byte value survives
--- config
location /upload {
    gateway_app $TEST_NGINX_APPS/libupload.so;
}
--- raw_request eval
my $body = main::all_bytes();
"POST /upload HTTP/1.1\r
Host: localhost\r
Connection: close\r
Content-Length: " . length($body) . "\r
\r
$body"
--- response_body eval
main::digest_line(main::all_bytes())



=== TEST 3: an empty POST (Content-Length: 0) has an empty body and CONTENT_LENGTH "0"
--- config
location /upload {
    gateway_app $TEST_NGINX_APPS/libupload.so;
}
location /env/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- pipelined_requests eval
["POST /upload", "POST /env/?key=CONTENT_LENGTH", "POST /env/"]
--- more_headers
Content-Length: 0
--- response_body_like eval
[
"\\A0 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\\n\\z",
"\\A0\\z",
'\A(?!.*"HTTP_CONTENT_LENGTH")(?s:.*)"CONTENT_LENGTH": "0",',
]



=== TEST 4: a POST without Content-Length or Transfer-Encoding has no body: no CONTENT_LENGTH
--- config
location /upload {
    gateway_app $TEST_NGINX_APPS/libupload.so;
}
location /env/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- pipelined_requests eval
["POST /env/?key=CONTENT_LENGTH", "POST /upload"]
--- error_code eval
[404, 200]
--- response_body_like eval
['\A(?!0)', "\\A0 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\\n\\z"]



=== TEST 5: CONTENT_LENGTH is the body's length, CONTENT_TYPE its type
--- config
location /env/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- pipelined_requests eval
["POST /env/\n{\"a\": [1, 2, 3]}", "PUT /env/?key=CONTENT_LENGTH\n0123456789"]
--- more_headers
Content-Type: application/json
--- response_body_like eval
[
'\A(?!.*"HTTP_CONTENT_)(?s:.*)"CONTENT_LENGTH": "16",\s+"CONTENT_TYPE": "application/json",',
'\A10\z',
]



=== TEST 6: GET without a body: no CONTENT_LENGTH
--- config
location /env/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- pipelined_requests eval
["GET /env/", "GET /env/?key=CONTENT_LENGTH", "GET /env/?key=REQUEST_METHOD"]
--- error_code eval
[200, 404, 200]
--- response_body_like eval
['\A(?!.*"CONTENT_LENGTH")(?s:.*)"REQUEST_METHOD": "GET",', '\A(?!0)', '\AGET\z']



=== TEST 7: HEAD: no CONTENT_LENGTH
--- config
location /env/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- request eval
["HEAD /env/?key=CONTENT_LENGTH", "HEAD /env/?key=REQUEST_METHOD"]
--- error_code eval
[404, 200]
--- response_headers eval
["!Transfer-Encoding", "Content-Length: 4"]



=== TEST 8: a chunked POST is decoded; CONTENT_LENGTH is the decoded total
--- config
location /upload {
    gateway_app $TEST_NGINX_APPS/libupload.so;
}
--- raw_request eval
"POST /upload HTTP/1.1\r
Host: localhost\r
Connection: close\r
Transfer-Encoding: chunked\r
\r
5\r
hello\r
1;ext=value\r
,\r
6\r
 world\r
a\r
0123456789\r
0\r
\r
"
--- response_body eval
main::digest_line("hello, world0123456789")



=== TEST 9: a chunked body in the environ: CONTENT_LENGTH decoded, Transfer-Encoding as a header
--- config
location /env/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- raw_request eval
"POST /env/ HTTP/1.1\r
Host: localhost\r
Connection: close\r
Content-Type: text/plain\r
Transfer-Encoding: chunked\r
\r
5\r
hello\r
11\r
, chunked world!!\r
0\r
\r
"
--- response_body_like
\A(?!.*"HTTP_CONTENT_)(?s:.*)"CONTENT_LENGTH": "22",\s+"CONTENT_TYPE": "text/plain",(?s:.*)"HTTP_TRANSFER_ENCODING": "chunked",



=== TEST 10: a chunked body whose chunks arrive in separate packets
--- config
location /upload {
    gateway_app $TEST_NGINX_APPS/libupload.so;
}
--- raw_request eval
my $body = main::body_of(30000);
my $chunked = main::chunked($body, 7000);
["POST /upload HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
 substr($chunked, 0, 3), substr($chunked, 3, 9000), substr($chunked, 9003)]
--- raw_request_middle_delay: 0.05
--- response_body eval
main::digest_line(main::body_of(30000))



=== TEST 11: an empty chunked body: length 0, CONTENT_LENGTH "0"
--- config
location /upload {
    gateway_app $TEST_NGINX_APPS/libupload.so;
}
location /env/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- pipelined_requests eval
["POST /upload\n0\r\n\r\n", "POST /env/?key=CONTENT_LENGTH\n0\r\n\r\n"]
--- more_headers
Transfer-Encoding: chunked
--- response_body eval
["0 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n", "0"]



=== TEST 12: a 1 MiB body spilled to a temporary file
--- config
location /upload {
    client_body_buffer_size 16k;
    gateway_app $TEST_NGINX_APPS/libupload.so;
}
--- request eval
"POST /upload\n" . main::body_of(1048576)
--- response_body eval
main::digest_line(main::body_of(1048576))
--- error_log
a client request body is buffered to a temporary file
--- no_error_log
[error]



=== TEST 13: a spilled body: CONTENT_LENGTH, and the app still counts after it
--- config
location /upload {
    client_body_buffer_size 16k;
    gateway_app $TEST_NGINX_APPS/libupload.so;
}
location /env/ {
    client_body_buffer_size 16k;
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- pipelined_requests eval
["POST /env/?key=CONTENT_LENGTH\n" . main::body_of(1048576),
 "POST /upload\n" . main::body_of(1048575),
 "GET /upload"]
--- response_body eval
["1048576", main::digest_line(main::body_of(1048575)), "1\n"]



=== TEST 14: a 1 MiB chunked body spilled to a temporary file
--- config
location /upload {
    client_body_buffer_size 16k;
    gateway_app $TEST_NGINX_APPS/libupload.so;
}
location /env/ {
    client_body_buffer_size 16k;
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- pipelined_requests eval
["POST /upload\n" . main::chunked(main::body_of(1048576), 5000),
 "POST /env/?key=CONTENT_LENGTH\n" . main::chunked(main::body_of(1048576), 65536)]
--- more_headers
Transfer-Encoding: chunked
--- response_body eval
[main::digest_line(main::body_of(1048576)), "1048576"]



=== TEST 15: client_body_in_file_only on: small and large bodies come from the file
--- config
location /upload {
    client_body_in_file_only on;
    gateway_app $TEST_NGINX_APPS/libupload.so;
}
--- pipelined_requests eval
["POST /upload\nsmall body", "POST /upload\n" . main::body_of(1048576), "GET /upload"]
--- response_body eval
[main::digest_line("small body"), main::digest_line(main::body_of(1048576)), "2\n"]



=== TEST 16: client_body_in_file_only clean
--- config
location /upload {
    client_body_in_file_only clean;
    client_body_buffer_size 16k;
    gateway_app $TEST_NGINX_APPS/libupload.so;
}
--- pipelined_requests eval
["POST /upload\nx", "POST /upload\n" . main::body_of(100000)]
--- response_body eval
[main::digest_line("x"), main::digest_line(main::body_of(100000))]



=== TEST 17: a body in memory, part read with the headers and the rest later
--- config
location /upload {
    client_body_buffer_size 16k;
    gateway_app $TEST_NGINX_APPS/libupload.so;
}
--- raw_request eval
my $body = main::body_of(8000);
["POST /upload HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 8000\r\n\r\n"
     . substr($body, 0, 100),
 substr($body, 100, 3000),
 substr($body, 3100)]
--- raw_request_middle_delay: 0.1
--- response_body eval
main::digest_line(main::body_of(8000))
--- no_error_log
a client request body is buffered to a temporary file
[error]



=== TEST 18: a body bigger than the buffer, part read with the headers and the rest later
--- config
location /upload {
    client_body_buffer_size 16k;
    gateway_app $TEST_NGINX_APPS/libupload.so;
}
--- raw_request eval
my $body = main::body_of(40000);
["POST /upload HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 40000\r\n\r\n"
     . substr($body, 0, 500),
 substr($body, 500, 20000),
 substr($body, 20500)]
--- raw_request_middle_delay: 0.1
--- response_body eval
main::digest_line(main::body_of(40000))
--- error_log
a client request body is buffered to a temporary file
--- no_error_log
[error]



=== TEST 19: client_body_in_single_buffer on, body read in parts
--- config
location /upload {
    client_body_buffer_size 16k;
    client_body_in_single_buffer on;
    gateway_app $TEST_NGINX_APPS/libupload.so;
}
--- raw_request eval
my $body = main::body_of(12000);
["POST /upload HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 12000\r\n\r\n"
     . substr($body, 0, 200),
 substr($body, 200)]
--- raw_request_middle_delay: 0.1
--- response_body eval
main::digest_line(main::body_of(12000))
--- no_error_log
a client request body is buffered to a temporary file
[error]



=== TEST 20: over client_max_body_size: 413, and the app is not called
--- config
location /upload {
    client_max_body_size 1k;
    gateway_app $TEST_NGINX_APPS/libupload.so;
}
--- request eval
["POST /upload\n" . main::body_of(1000), "POST /upload\n" . main::body_of(2000), "GET /upload"]
--- error_code eval
[200, 413, 200]
--- response_body_like eval
["\\A" . main::digest_line(main::body_of(1000)) . "\\z", "413 Request Entity Too Large", "\\A1\\n\\z"]



=== TEST 21: over client_max_body_size: nginx says why
--- config
location /upload {
    client_max_body_size 1k;
    gateway_app $TEST_NGINX_APPS/libupload.so;
}
--- request eval
"POST /upload\n" . main::body_of(2000)
--- error_code: 413
--- error_log
client intended to send too large body: 2000 bytes
--- no_error_log eval
qr/gateway: app "upload" (?!ready from)/



=== TEST 22: a chunked body over client_max_body_size: 413, and the app is not called
--- config
location /upload {
    client_max_body_size 1k;
    gateway_app $TEST_NGINX_APPS/libupload.so;
}
--- request eval
["POST /upload\n" . main::chunked(main::body_of(500), 100),
 "POST /upload\n" . main::chunked(main::body_of(2000), 400),
 "GET /upload"]
--- more_headers eval
["Transfer-Encoding: chunked", "Transfer-Encoding: chunked", ""]
--- error_code eval
[200, 413, 200]
--- response_body_like eval
["\\A" . main::digest_line(main::body_of(500)) . "\\z", "413 Request Entity Too Large", "\\A1\\n\\z"]



=== TEST 23: a chunked body over client_max_body_size: nginx says why
--- config
location /upload {
    client_max_body_size 1k;
    gateway_app $TEST_NGINX_APPS/libupload.so;
}
--- request eval
"POST /upload\n" . main::chunked(main::body_of(2000), 400)
--- more_headers
Transfer-Encoding: chunked
--- error_code: 413
--- error_log
client intended to send too large chunked body
--- no_error_log eval
qr/gateway: app "upload" (?!ready from)/



=== TEST 24: a client that gives up in the middle of the body
--- config
location /upload {
    gateway_app $TEST_NGINX_APPS/libupload.so;
}
--- raw_request eval
"POST /upload HTTP/1.1\r
Host: localhost\r
Connection: close\r
Content-Length: 100000\r
\r
only a few bytes"
--- timeout: 0.5
--- abort
--- ignore_response
--- wait: 0.1
--- error_log
client prematurely closed connection
--- no_error_log
[error]
[alert]
[crit]



=== TEST 25: after a client gave up mid-body, the same worker serves the next requests
--- config
location /upload {
    gateway_app $TEST_NGINX_APPS/libupload.so;
}
--- request eval
["POST /upload\nonly a few bytes", "POST /upload\nafter the abort", "GET /upload"]
--- more_headers eval
["Content-Length: 100000", "", ""]
--- timeout: 0.5
--- abort
--- error_code eval
["", 200, 200]
--- response_body eval
["", main::digest_line("after the abort"), "1\n"]
--- no_error_log
[error]
[alert]
[crit]
