# Exercises the Test::Nginx::Socket harness itself against stock nginx
# features only, so it passes under our implementation (test-nginx/lib)
# and under openresty's Test::Nginx::Socket alike.

use Test::Nginx::Socket 'no_plan';

$ENV{TEST_NGINX_GREETING} ||= 'howdy';

no_shuffle();
run_tests();

__DATA__

=== TEST 1: response_body keeps the trailing newline
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request
GET /t
--- response_body
hello
--- error_code: 200
--- no_error_log
[error]



=== TEST 2: response_body chomp
--- config
    location = /t {
        return 200 "no newline";
    }
--- request
GET /t
--- response_body chomp
no newline



=== TEST 3: response_body eval
--- config
    location = /t {
        return 200 "a\tb\r\n";
    }
--- request
GET /t
--- response_body eval
"a\tb\r\n"



=== TEST 4: response_body_like matches across lines (/s)
--- config
    location = /t {
        return 200 "line one\nline two\n";
    }
--- request
GET /t
--- response_body_like
^line one.line t.o$



=== TEST 5: response_body_like eval with a qr//
--- config
    location = /t {
        return 200 "id=12345\n";
    }
--- request
GET /t
--- response_body_like eval
qr/^id=\d+\n\z/



=== TEST 6: error_code, error_log and a missing file
--- config
    location /missing {
        root html;
    }
--- request
GET /missing/nope.txt
--- error_code: 404
--- response_body_like: 404 Not Found
--- error_log
No such file or directory
--- no_error_log
[alert]
[emerg]



=== TEST 7: error_log eval with strings and regexes
--- config
    location /missing {
        root html;
    }
--- request
GET /missing/gone.txt
--- error_code: 404
--- response_body_like: 404 Not Found
--- error_log eval
[qr/open\(\) "[^"]*gone\.txt" failed/, "No such file or directory"]
--- grep_error_log chop
No such file or directory
--- grep_error_log_out
No such file or directory



=== TEST 8: error_code_like
--- config
    location = /t {
        return 204;
    }
--- request
GET /t
--- error_code_like: ^2\d\d$
--- response_body chomp



=== TEST 9: response_headers present and absent
--- config
    location = /t {
        add_header X-Foo bar;
        return 200 "abc";
    }
--- request
GET /t
--- response_headers
X-Foo: bar
Content-Length: 3
Content-Type: text/plain
!X-Bar
!Transfer-Encoding
--- response_body chomp
abc



=== TEST 10: response_headers_like
--- config
    location = /t {
        add_header X-Foo "bar-42";
        return 200 "ok\n";
    }
--- request
GET /t
--- response_headers_like
X-Foo: bar-\d+
Content-Length: \d+
--- response_body
ok



=== TEST 11: more_headers, including a Host override
--- config
    location = /t {
        return 200 "$http_x_foo|$http_user_agent|$host\n";
    }
--- request
GET /t
--- more_headers
X-Foo: hello
User-Agent: harness
Host: example.com
--- response_body
hello|harness|example.com



=== TEST 12: comment lines and indentation before the request line
--- config
    location = /t {
        return 200 "$request_method $uri $server_protocol\n";
    }
--- request
    # what the test is about
    # goes here
    GET /t
--- response_body
GET /t HTTP/1.1



=== TEST 13: HTTP/1.0 request
--- config
    location = /t {
        return 200 "$server_protocol\n";
    }
--- request
GET /t HTTP/1.0
--- response_body
HTTP/1.0
--- response_headers
!Transfer-Encoding



=== TEST 14: raw_request sent verbatim
--- config
    location = /t {
        return 200 "raw $server_protocol $http_x_raw\n";
    }
--- raw_request eval
"GET /t HTTP/1.0\r
X-Raw: yes\r
\r
"
--- response_body
raw HTTP/1.0 yes



=== TEST 15: raw_request split into packets
--- config
    location = /t {
        return 200 "$http_x_split\n";
    }
--- raw_request eval
["GET /t HTTP/1.1\r\nHost: localhost\r\nX-Sp",
 "lit: joined\r\nConnection: close\r\n\r\n"]
--- raw_request_middle_delay: 0.01
--- response_body
joined



=== TEST 16: request body gets a Content-Length (body trimmed)
--- config
    location = /echo {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/sink;
        add_header X-Body "$request_body" always;
        add_header X-Len "$content_length" always;
    }
    location = /sink {
        return 204;
    }
--- request
POST /echo
hello world
--- error_code: 204
--- response_headers
X-Body: hello world
X-Len: 11



=== TEST 17: request eval split into packets
--- config
    location = /echo {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/sink;
        add_header X-Body "$request_body" always;
    }
    location = /sink {
        return 204;
    }
--- request eval
[["POST /echo\nhel", {value => "lo", delay_before => 0.01}]]
--- error_code: 204
--- response_headers
X-Body: hello



=== TEST 18: several requests, one connection each
--- config
    location = /a {
        return 200 "a $connection_requests\n";
    }
    location = /b {
        return 404;
    }
--- request eval
["GET /a", "GET /b"]
--- error_code eval
[200, 404]
--- response_body_like eval
["^a 1\n\\z", "404 Not Found"]



=== TEST 19: pipelined requests share one connection
--- config
    location = /p {
        return 200 "request $connection_requests\n";
    }
--- pipelined_requests eval
["GET /p", "GET /p", "GET /p"]
--- response_body eval
["request 1\n", "request 2\n", "request 3\n"]



=== TEST 20: chunked response is decoded
--- config
    location = /chunked {
        # SSI drops the Content-Length, so HTTP/1.1 gets a chunked body
        ssi on;
        ssi_types text/plain;
        return 200 "hello <!--# echo var=\"uri\" -->\n";
    }
--- request
GET /chunked
--- response_headers
Transfer-Encoding: chunked
!Content-Length
--- response_body
hello /chunked



=== TEST 21: HEAD request has no body
--- config
    location = /t {
        return 200 "body\n";
    }
--- request
HEAD /t
--- response_headers
Content-Length: 5
--- response_body chomp



=== TEST 22: user_files, http_config, main_config and env expansion
--- main_config
env TEST_NGINX_GREETING;
--- http_config
    map $uri $mapped {
        default "mapped";
    }
--- config
    location = /t {
        return 200 "$TEST_NGINX_GREETING $mapped\n";
    }
--- user_files
>>> sub/file.txt
file content
--- request eval
["GET /t", "GET /sub/file.txt"]
--- response_body eval
["howdy mapped\n", "file content\n"]



=== TEST 23: access_log, timeout and wait
--- config
    location = /t {
        return 200 "logged\n";
    }
--- request
GET /t?marker=xyz
--- timeout: 5
--- wait: 0.1
--- response_body
logged
--- access_log
GET /t?marker=xyz HTTP/1.1
--- no_access_log
GET /other



=== TEST 24: an unknown directive makes nginx die at startup
--- config
    location = /t {
        foo_bar_baz on;
    }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] .*unknown directive "foo_bar_baz" in \S*nginx\.conf:\d+/



=== TEST 25: skip_nginx skips the block's subtests
--- config
    location = /t {
        return 500;
    }
--- request
GET /t
--- skip_nginx: 1: > 0.0.1
--- response_body
never checked



=== TEST 26: a SKIP block is not run
--- SKIP
--- config
    location = /t {
        return 500;
    }
--- request
GET /t
--- response_body
never checked



=== TEST 27: response_body_filters: builtin names, applied in order
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request
GET /t
--- response_body_filters
uc lcfirst
--- response_body
hELLO



=== TEST 28: response_body_filters: length, md5_hex and code refs
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request eval
["GET /t", "GET /t", "GET /t"]
--- response_body_filters eval
[["length"], ["md5_hex"], [sub { scalar CORE::reverse $_[0] }, "uc"]]
--- response_body eval
["6", "b1946ac92492d2347c6235b4d2611184", "\nOLLEH"]
