# What an app's response becomes on the wire: status lines and reason phrases, headers
# (repeated ones stay separate, hop-by-hop ones are refused), file bodies sent by nginx
# with its ranges and conditional requests, internal redirects; and responses the module
# must refuse: each becomes nginx's own 500, with none of the app's headers or body, an
# [error] line saying why, and the worker still serving the next request.
#
# The raw-response fixture (test-nginx/fixtures/raw-response) builds responses by hand on
# the raw ABI, to send what the SDK never would.
use Test::Nginx::Socket 'no_plan';

# Blocks with several requests check the error log after each response: with the log
# accumulated, an [error] from the first request is still there at the later checks.
check_accum_error_log();

# The exact header block of nginx's own 500 page: nothing the app said is in it.
our $Nginx500Headers = qr{\AHTTP/1\.1 500 Internal Server Error\r\nServer: [^\r\n]+\r\nDate: [^\r\n]+\r\nContent-Type: text/html\r\nContent-Length: \d+\r\nConnection: close\r\n\z};
# ... and its body.
our $Nginx500Body = qr{\A<html>\r?\n<head><title>500 Internal Server Error</title></head>\r?\n<body>\r?\n<center><h1>500 Internal Server Error</h1></center>\r?\n.*</html>\r?\n\z}s;

# The invalid-response [error] line of app NAME for reason WHY (a regex).
sub invalid {
    my ($app, $why) = @_;
    return qr/\[error\] .*gateway: app "\Q$app\E" returned an invalid response: $why \(request [0-9a-f]{32}\)/;
}

# Raw headers with exactly one line for each NAME (in any case), carrying its VALUE (a
# string, or a qr// for the whole value): exactly_one(Server => "app/1", Date => qr/.+/).
sub exactly_one {
    my %want = @_;
    my @checks = map {
        my $name = $_;
        my $value = ref $want{$name} ? $want{$name} : quotemeta $want{$name};
        my $other = qr/(?:(?!(?i:\Q$name\E):)[^\r\n]*\r\n)*/;
        qr/(?=$other(?i:\Q$name\E): $value\r\n$other\z)/;
    } sort keys %want;
    my $all = join '', @checks;
    return qr/\A$all/;
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a valid raw response passes, with its header
--- config
location /raw {
    gateway_app $TEST_NGINX_APPS/libraw_response.so;
}
--- request
GET /raw?ok
--- response_body
raw ok
--- response_headers
X-Fine: yes
Content-Length: 7
--- error_code: 200
--- no_error_log
[error]
[alert]



=== TEST 2: CRLF in a header value: 500, no split header, no X-Echo, no body
--- config
location /raw {
    gateway_app $TEST_NGINX_APPS/libraw_response.so;
}
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request eval
["GET /raw?crlf", "GET /hello"]
--- error_code eval
[500, 200]
--- raw_response_headers_like eval
[$::Nginx500Headers, "^HTTP/1\\.1 200 OK\r\n"]
--- response_headers eval
["!Set-Cookie\n!X-Echo", "!Set-Cookie"]
--- response_body_like eval
[$::Nginx500Body, "\\AHello, World!\n\\z"]
--- error_log eval
main::invalid("raw-response", 'header "X-Echo" has a value with CR, LF, NUL or other control characters')
--- no_error_log
[alert]
[crit]



=== TEST 3: a bare LF in a header value
--- config
location /raw {
    gateway_app $TEST_NGINX_APPS/libraw_response.so;
}
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request eval
["GET /raw?lf", "GET /hello"]
--- error_code eval
[500, 200]
--- raw_response_headers_like eval
[$::Nginx500Headers, "^HTTP/1\\.1 200 OK\r\n"]
--- raw_response_headers_unlike eval
["(?i)X-Evil|X-Echo", "(?i)X-Evil|X-Echo"]
--- response_body_like eval
[$::Nginx500Body, "\\AHello, World!\n\\z"]
--- error_log eval
main::invalid("raw-response", 'header "X-Echo" has a value with CR, LF, NUL or other control characters')
--- no_error_log
[alert]
[crit]



=== TEST 4: NUL in a header value
--- config
location /raw {
    gateway_app $TEST_NGINX_APPS/libraw_response.so;
}
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request eval
["GET /raw?nul", "GET /hello"]
--- error_code eval
[500, 200]
--- raw_response_headers_like eval
[$::Nginx500Headers, "^HTTP/1\\.1 200 OK\r\n"]
--- response_body_like eval
[$::Nginx500Body, "\\AHello, World!\n\\z"]
--- error_log eval
main::invalid("raw-response", 'header "X-Echo" has a value with CR, LF, NUL or other control characters')
--- no_error_log
[alert]
[crit]



=== TEST 5: a header name with a space
--- config
location /raw {
    gateway_app $TEST_NGINX_APPS/libraw_response.so;
}
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request eval
["GET /raw?badname", "GET /hello"]
--- error_code eval
[500, 200]
--- raw_response_headers_like eval
[$::Nginx500Headers, "^HTTP/1\\.1 200 OK\r\n"]
--- response_body_like eval
[$::Nginx500Body, "\\AHello, World!\n\\z"]
--- error_log eval
main::invalid("raw-response", 'header name "Bad Name" is not an HTTP token')
--- no_error_log
[alert]
[crit]



=== TEST 6: an empty header name
--- config
location /raw {
    gateway_app $TEST_NGINX_APPS/libraw_response.so;
}
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request eval
["GET /raw?emptyname", "GET /hello"]
--- error_code eval
[500, 200]
--- raw_response_headers_like eval
[$::Nginx500Headers, "^HTTP/1\\.1 200 OK\r\n"]
--- response_body_like eval
[$::Nginx500Body, "\\AHello, World!\n\\z"]
--- error_log eval
main::invalid("raw-response", 'header name "" is not an HTTP token')
--- no_error_log
[alert]
[crit]



=== TEST 7: Transfer-Encoding from the app
--- config
location /raw {
    gateway_app $TEST_NGINX_APPS/libraw_response.so;
}
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request eval
["GET /raw?hop", "GET /hello"]
--- error_code eval
[500, 200]
--- raw_response_headers_like eval
[$::Nginx500Headers, "^HTTP/1\\.1 200 OK\r\n"]
--- response_headers eval
["!Transfer-Encoding", "!Transfer-Encoding"]
--- response_body_like eval
[$::Nginx500Body, "\\AHello, World!\n\\z"]
--- error_log eval
main::invalid("raw-response", 'header "Transfer-Encoding" is hop-by-hop, which apps may not set')
--- no_error_log
[alert]
[crit]



=== TEST 8: Connection from the app
--- config
location /raw {
    gateway_app $TEST_NGINX_APPS/libraw_response.so;
}
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request eval
["GET /raw?connection", "GET /hello"]
--- error_code eval
[500, 200]
--- raw_response_headers_like eval
[$::Nginx500Headers, "^HTTP/1\\.1 200 OK\r\n"]
--- response_body_like eval
[$::Nginx500Body, "\\AHello, World!\n\\z"]
--- error_log eval
main::invalid("raw-response", 'header "Connection" is hop-by-hop, which apps may not set')
--- no_error_log
[alert]
[crit]



=== TEST 9: status 99
--- config
location /raw {
    gateway_app $TEST_NGINX_APPS/libraw_response.so;
}
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request eval
["GET /raw?status", "GET /hello"]
--- error_code eval
[500, 200]
--- raw_response_headers_like eval
[$::Nginx500Headers, "^HTTP/1\\.1 200 OK\r\n"]
--- response_body_like eval
[$::Nginx500Body, "\\AHello, World!\n\\z"]
--- error_log eval
main::invalid("raw-response", 'status 99 is not a final HTTP status')
--- no_error_log
[alert]
[crit]



=== TEST 10: an unknown body kind
--- config
location /raw {
    gateway_app $TEST_NGINX_APPS/libraw_response.so;
}
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request eval
["GET /raw?kind", "GET /hello"]
--- error_code eval
[500, 200]
--- raw_response_headers_like eval
[$::Nginx500Headers, "^HTTP/1\\.1 200 OK\r\n"]
--- response_body_like eval
[$::Nginx500Body, "\\AHello, World!\n\\z"]
--- error_log eval
main::invalid("raw-response", 'body kind 42 is unknown to this module')
--- no_error_log
[alert]
[crit]



=== TEST 11: Content-Length 5 for a body of 12 bytes
--- config
location /raw {
    gateway_app $TEST_NGINX_APPS/libraw_response.so;
}
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request eval
["GET /raw?length", "GET /hello"]
--- error_code eval
[500, 200]
--- raw_response_headers_like eval
[$::Nginx500Headers, "^HTTP/1\\.1 200 OK\r\n"]
--- response_body_like eval
[$::Nginx500Body, "\\AHello, World!\n\\z"]
--- error_log eval
main::invalid("raw-response", 'Content-Length "5" differs from the body\'s 12 bytes')
--- no_error_log
[alert]
[crit]



=== TEST 12: a streamed body without a stream function
--- config
location /raw {
    gateway_app $TEST_NGINX_APPS/libraw_response.so;
}
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request eval
["GET /raw?nostream", "GET /hello"]
--- error_code eval
[500, 200]
--- raw_response_headers_like eval
[$::Nginx500Headers, "^HTTP/1\\.1 200 OK\r\n"]
--- response_body_like eval
[$::Nginx500Body, "\\AHello, World!\n\\z"]
--- error_log eval
main::invalid("raw-response", 'streamed body without a stream function')
--- no_error_log
[alert]
[crit]



=== TEST 13: an invalid response is a 500 that error_page can replace
--- config
error_page 500 /oops.txt;
location /raw {
    gateway_app $TEST_NGINX_APPS/libraw_response.so;
}
--- user_files
>>> oops.txt
our own 500 page
--- request
GET /raw?crlf
--- error_code: 500
--- response_body
our own 500 page
--- response_headers
!X-Echo
!Set-Cookie
--- error_log eval
main::invalid("raw-response", 'header "X-Echo" has a value with CR, LF, NUL or other control characters')



=== TEST 14: hop-by-hop Connection set through the SDK is refused by the module
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request eval
["GET /s/header?name=Connection&value=x-from-app", "GET /hello"]
--- error_code eval
[500, 200]
--- raw_response_headers_like eval
[$::Nginx500Headers, "^HTTP/1\\.1 200 OK\r\n"]
--- raw_response_headers_unlike eval
["x-from-app", "x-from-app"]
--- response_body_like eval
[$::Nginx500Body, "\\AHello, World!\n\\z"]
--- error_log eval
main::invalid("stream", 'header "connection" is hop-by-hop, which apps may not set')
--- no_error_log
[alert]
[crit]



=== TEST 15: hop-by-hop Keep-Alive set through the SDK is refused by the module
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request eval
["GET /s/header?name=Keep-Alive&value=x-from-app", "GET /hello"]
--- error_code eval
[500, 200]
--- raw_response_headers_like eval
[$::Nginx500Headers, "^HTTP/1\\.1 200 OK\r\n"]
--- raw_response_headers_unlike eval
["x-from-app", "x-from-app"]
--- response_body_like eval
[$::Nginx500Body, "\\AHello, World!\n\\z"]
--- error_log eval
main::invalid("stream", 'header "keep-alive" is hop-by-hop, which apps may not set')
--- no_error_log
[alert]
[crit]



=== TEST 16: hop-by-hop Proxy-Authenticate set through the SDK is refused by the module
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request eval
["GET /s/header?name=Proxy-Authenticate&value=x-from-app", "GET /hello"]
--- error_code eval
[500, 200]
--- raw_response_headers_like eval
[$::Nginx500Headers, "^HTTP/1\\.1 200 OK\r\n"]
--- raw_response_headers_unlike eval
["x-from-app", "x-from-app"]
--- response_body_like eval
[$::Nginx500Body, "\\AHello, World!\n\\z"]
--- error_log eval
main::invalid("stream", 'header "proxy-authenticate" is hop-by-hop, which apps may not set')
--- no_error_log
[alert]
[crit]



=== TEST 17: hop-by-hop Proxy-Authorization set through the SDK is refused by the module
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request eval
["GET /s/header?name=Proxy-Authorization&value=x-from-app", "GET /hello"]
--- error_code eval
[500, 200]
--- raw_response_headers_like eval
[$::Nginx500Headers, "^HTTP/1\\.1 200 OK\r\n"]
--- raw_response_headers_unlike eval
["x-from-app", "x-from-app"]
--- response_body_like eval
[$::Nginx500Body, "\\AHello, World!\n\\z"]
--- error_log eval
main::invalid("stream", 'header "proxy-authorization" is hop-by-hop, which apps may not set')
--- no_error_log
[alert]
[crit]



=== TEST 18: hop-by-hop TE set through the SDK is refused by the module
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request eval
["GET /s/header?name=TE&value=x-from-app", "GET /hello"]
--- error_code eval
[500, 200]
--- raw_response_headers_like eval
[$::Nginx500Headers, "^HTTP/1\\.1 200 OK\r\n"]
--- raw_response_headers_unlike eval
["x-from-app", "x-from-app"]
--- response_body_like eval
[$::Nginx500Body, "\\AHello, World!\n\\z"]
--- error_log eval
main::invalid("stream", 'header "te" is hop-by-hop, which apps may not set')
--- no_error_log
[alert]
[crit]



=== TEST 19: hop-by-hop Trailer set through the SDK is refused by the module
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request eval
["GET /s/header?name=Trailer&value=x-from-app", "GET /hello"]
--- error_code eval
[500, 200]
--- raw_response_headers_like eval
[$::Nginx500Headers, "^HTTP/1\\.1 200 OK\r\n"]
--- raw_response_headers_unlike eval
["x-from-app", "x-from-app"]
--- response_body_like eval
[$::Nginx500Body, "\\AHello, World!\n\\z"]
--- error_log eval
main::invalid("stream", 'header "trailer" is hop-by-hop, which apps may not set')
--- no_error_log
[alert]
[crit]



=== TEST 20: hop-by-hop Transfer-Encoding set through the SDK is refused by the module
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request eval
["GET /s/header?name=Transfer-Encoding&value=x-from-app", "GET /hello"]
--- error_code eval
[500, 200]
--- raw_response_headers_like eval
[$::Nginx500Headers, "^HTTP/1\\.1 200 OK\r\n"]
--- raw_response_headers_unlike eval
["x-from-app", "x-from-app"]
--- response_body_like eval
[$::Nginx500Body, "\\AHello, World!\n\\z"]
--- error_log eval
main::invalid("stream", 'header "transfer-encoding" is hop-by-hop, which apps may not set')
--- no_error_log
[alert]
[crit]



=== TEST 21: hop-by-hop Upgrade set through the SDK is refused by the module
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request eval
["GET /s/header?name=Upgrade&value=x-from-app", "GET /hello"]
--- error_code eval
[500, 200]
--- raw_response_headers_like eval
[$::Nginx500Headers, "^HTTP/1\\.1 200 OK\r\n"]
--- raw_response_headers_unlike eval
["x-from-app", "x-from-app"]
--- response_body_like eval
[$::Nginx500Body, "\\AHello, World!\n\\z"]
--- error_log eval
main::invalid("stream", 'header "upgrade" is hop-by-hop, which apps may not set')
--- no_error_log
[alert]
[crit]



=== TEST 22: an app's "Connection: close": the client sees nginx's own 500 headers only
On a keep-alive connection, a valid response first keeps it alive; the refused one
closes it with nginx's single "Connection: close" and nothing from the app.
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- pipelined_requests eval
["GET /s/header?name=X-Fine&value=yes", "GET /s/header?name=Connection&value=close"]
--- error_code eval
[200, 500]
--- raw_response_headers_like eval
["^HTTP/1\\.1 200 OK\r\n(?:[^\r\n]+\r\n)*Connection: keep-alive\r\n", $::Nginx500Headers]
--- response_headers eval
["X-Fine: yes", ""]
--- response_body_like eval
["\\Aechoed\n\\z", $::Nginx500Body]
--- error_log eval
main::invalid("stream", 'header "connection" is hop-by-hop, which apps may not set')



=== TEST 23: CRLF in an echoed header: the SDK refuses it and the app answers 400
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- request
GET /s/header?name=X-Echo&value=a%0D%0ASet-Cookie:%20evil=1
--- error_code: 400
--- response_body
not a valid header
--- response_headers
!Set-Cookie
!X-Echo
--- no_error_log
[error]



=== TEST 24: a Content-Length that does not match the body is refused, a matching one kept
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- request eval
["GET /s/header?name=Content-Length&value=3", "GET /s/header?name=Content-Length&value=7"]
--- error_code eval
[500, 200]
--- raw_response_headers_like eval
[$::Nginx500Headers, "^HTTP/1\\.1 200 OK\r\n"]
--- response_headers eval
["", "Content-Length: 7"]
--- response_body_like eval
[$::Nginx500Body, "\\Aechoed\n\\z"]
--- error_log eval
main::invalid("stream", 'Content-Length "3" differs from the body\'s 7 bytes')



=== TEST 25: a status with the app's own reason phrase
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- request
GET /s/status?code=299&reason=Fine%20Thanks
--- error_code: 299
--- raw_response_headers_like: ^HTTP/1\.1 299 Fine Thanks\r\n
--- response_body
status 299
--- no_error_log
[error]



=== TEST 26: a known status without a reason gets nginx's phrase, an unknown one none
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- pipelined_requests eval
["GET /s/status?code=201", "GET /s/status?code=404", "GET /s/status?code=999"]
--- error_code eval
[201, 404, 999]
--- raw_response_headers_like eval
["^HTTP/1\\.1 201 Created\r\n", "^HTTP/1\\.1 404 Not Found\r\n", "^HTTP/1\\.1 999 ?\r\n"]
--- response_body eval
["status 201\n", "status 404\n", "status 999\n"]
--- no_error_log
[error]



=== TEST 27: a reason phrase with a CR is refused
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- request eval
["GET /s/status?code=200&reason=Fine%0D%0ASet-Cookie:%20evil=1", "GET /s/status?code=200"]
--- error_code eval
[500, 200]
--- raw_response_headers_like eval
[$::Nginx500Headers, "^HTTP/1\\.1 200 OK\r\n"]
--- response_body_like eval
[$::Nginx500Body, "\\Astatus 200\n\\z"]
--- error_log eval
main::invalid("stream", 'reason phrase "Fine\\\\r\\\\nSet-Cookie: evil=1" has control characters')



=== TEST 28: 204 has no body and no Content-Length
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- request eval
["GET /s/status?code=204", "GET /s/status?code=200"]
--- error_code eval
[204, 200]
--- response_headers eval
["!Content-Length\n!Transfer-Encoding", "Content-Length: 11"]
--- response_body eval
["", "status 200\n"]



=== TEST 29: two Set-Cookie headers stay two header lines
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- request
GET /s/cookies
--- raw_response_headers_like: (?i)\r\nset-cookie: a=1; Path=/\r\n(?:[^\r\n]+\r\n)*set-cookie: b=2; HttpOnly\r\n
--- response_headers
Set-Cookie: a=1; Path=/, b=2; HttpOnly
--- response_body
two cookies



=== TEST 30: nginx's add_header applies to app responses
--- config
location /hello {
    add_header X-Added yes;
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request
GET /hello
--- response_headers
X-Added: yes
Content-Type: text/plain; charset=utf-8
--- response_body
Hello, World!



=== TEST 31: a file body: nginx sends it with Last-Modified, ETag and Accept-Ranges
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location = /f {
    rewrite ^ "/s/file?path=$TEST_NGINX_SERVER_ROOT/html/f.txt" last;
}
--- user_files
>>> f.txt 202001020304.05
0123456789
--- request
GET /f
--- error_code: 200
--- response_headers
Content-Length: 11
Last-Modified: Thu, 02 Jan 2020 03:04:05 GMT
ETag: "5e0d5da5-b"
Accept-Ranges: bytes
--- response_body
0123456789
--- no_error_log
[error]



=== TEST 32: a file body honours Range
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location = /f {
    rewrite ^ "/s/file?path=$TEST_NGINX_SERVER_ROOT/html/f.txt" last;
}
--- user_files
>>> f.txt 202001020304.05
0123456789
--- request
GET /f
--- more_headers
Range: bytes=2-5
--- error_code: 206
--- response_headers
Content-Range: bytes 2-5/11
Content-Length: 4
--- response_body chomp
2345



=== TEST 33: a file body honours If-Modified-Since and If-None-Match
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location = /f {
    rewrite ^ "/s/file?path=$TEST_NGINX_SERVER_ROOT/html/f.txt" last;
}
--- user_files
>>> f.txt 202001020304.05
0123456789
--- request eval
["GET /f", "GET /f", "GET /f"]
--- more_headers eval
["If-Modified-Since: Thu, 02 Jan 2020 03:04:05 GMT",
 "If-None-Match: \"5e0d5da5-b\"",
 "If-Modified-Since: Wed, 01 Jan 2020 00:00:00 GMT"]
--- error_code eval
[304, 304, 200]
--- response_body eval
["", "", "0123456789\n"]



=== TEST 34: HEAD of a file body: the headers only
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location = /f {
    rewrite ^ "/s/file?path=$TEST_NGINX_SERVER_ROOT/html/f.txt" last;
}
--- user_files
>>> f.txt
0123456789
--- request
HEAD /f
--- response_headers
Content-Length: 11
Accept-Ranges: bytes
--- response_body



=== TEST 35: a missing file is a 404 with the reason in the log
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location = /f {
    rewrite ^ "/s/file?path=$TEST_NGINX_SERVER_ROOT/html/missing.txt" last;
}
--- request
GET /f
--- error_code: 404
--- response_body_like: 404 Not Found
--- error_log eval
qr{\[error\] .*gateway: app "stream" answered with file "[^"]*/html/missing\.txt": No such file or directory.* \(request [0-9a-f]{32}\)}



=== TEST 36: a directory is a 403
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location = /f {
    rewrite ^ "/s/file?path=$TEST_NGINX_SERVER_ROOT/html" last;
}
--- request
GET /f
--- error_code: 403
--- response_body_like: 403 Forbidden
--- error_log eval
qr{\[error\] .*gateway: app "stream" answered with file "[^"]*/html": is a directory \(request [0-9a-f]{32}\)}



=== TEST 37: a relative file path is refused
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- request eval
["GET /s/file?path=html/index.html", "GET /s/status?code=200"]
--- error_code eval
[500, 200]
--- response_body_like eval
[$::Nginx500Body, "\\Astatus 200\n\\z"]
--- error_log eval
main::invalid("stream", 'file body path "html/index.html" is not absolute')



=== TEST 38: an internal redirect reaches an internal location, which clients cannot
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location /protected/ {
    internal;
    alias $TEST_NGINX_SERVER_ROOT/html/private/;
}
--- user_files
>>> private/secret.txt
top secret
--- request eval
["GET /s/redirect?to=/protected/secret.txt", "GET /protected/secret.txt"]
--- error_code eval
[200, 404]
--- response_body_like eval
["\\Atop secret\n\\z", "404 Not Found"]



=== TEST 39: an internal redirect to a named location keeps the URI and arguments
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location @named {
    return 200 "named $uri $args\n";
}
--- request
GET /s/redirect?to=@named
--- response_body
named /s/redirect to=@named



=== TEST 40: an internal redirect to a URI with arguments
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location = /dest {
    return 200 "dest $uri $args\n";
}
--- request
GET /s/redirect?to=%2Fdest%3Fa%3D1%26b%3D2
--- response_body
dest /dest a=1&b=2



=== TEST 41: an internal redirect to another app
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request
GET /s/redirect?to=/hello
--- response_body
Hello, World!



=== TEST 42: a redirect loop ends in nginx's cycle check
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
location = /loop {
    rewrite ^ /s/redirect?to=/loop last;
}
--- request eval
["GET /s/redirect?to=/loop", "GET /s/status?code=200"]
--- error_code eval
[500, 200]
--- response_body_like eval
[$::Nginx500Body, "\\Astatus 200\n\\z"]
--- error_log eval
qr/rewrite or internal redirection cycle/
--- no_error_log
[alert]



=== TEST 43: a relative redirect target is refused
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- request eval
["GET /s/redirect?to=elsewhere", "GET /s/status?code=200"]
--- error_code eval
[500, 200]
--- response_body_like eval
[$::Nginx500Body, "\\Astatus 200\n\\z"]
--- error_log eval
main::invalid("stream", 'internal redirect target "elsewhere" is neither a path nor a named location')



=== TEST 44: an app's Server and Date go out once, instead of nginx's own
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- request eval
["GET /s/header?name=Server&value=app-server/1.0",
 "GET /s/header?name=Date&value=Tue,%2001%20Jan%202030%2000:00:00%20GMT",
 "GET /s/status?code=200"]
--- raw_response_headers_like eval
[main::exactly_one(Server => "app-server/1.0", Date => qr/[^\r\n]+ GMT/),
 main::exactly_one(Server => qr/nginx[^\r\n]*/, Date => "Tue, 01 Jan 2030 00:00:00 GMT"),
 main::exactly_one(Server => qr/nginx[^\r\n]*/, Date => qr/[^\r\n]+ GMT/)]
--- response_headers eval
["Server: app-server/1.0", "Date: Tue, 01 Jan 2030 00:00:00 GMT", ""]
--- response_body eval
["echoed\n", "echoed\n", "status 200\n"]
--- no_error_log
[error]



=== TEST 45: Server and Date in any case, from a raw-ABI app
--- config
location /raw {
    gateway_app $TEST_NGINX_APPS/libraw_response.so;
}
--- request
GET /raw?server-date
--- raw_response_headers_like eval
main::exactly_one(Server => "raw-app/2", Date => "Wed, 02 Jan 2030 03:04:05 GMT")
--- response_headers
Server: raw-app/2
Date: Wed, 02 Jan 2030 03:04:05 GMT
--- response_body
dated
--- no_error_log
[error]
