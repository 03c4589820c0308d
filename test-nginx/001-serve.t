# An app library served in-process: status, headers and body reach the client.
use Test::Nginx::Socket 'no_plan';

no_shuffle();
run_tests();

__DATA__

=== TEST 1: hello answers from the Rust app
--- config
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request
GET /hello
--- response_body
Hello, World!
--- response_headers
Content-Type: text/plain; charset=utf-8
Content-Length: 14
--- error_code: 200
--- no_error_log
[error]
[alert]



=== TEST 2: the worker reports the app it serves
--- config
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request
GET /hello
--- error_log eval
qr/gateway: app "hello" ready from "[^"]+libhello\.so" \(SDK \d+\.\d+\.\d+, ABI 1\.\d+\)/



=== TEST 3: HEAD sends the headers without the body
--- config
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request
HEAD /hello
--- response_body
--- response_headers
Content-Length: 14
--- error_code: 200



=== TEST 4: HTTP/1.0 without Host
--- config
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- raw_request eval
"GET /hello HTTP/1.0\r\n\r\n"
--- response_body
Hello, World!
--- error_code: 200



=== TEST 5: a POST body the app does not read is discarded, the response is unchanged
--- config
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request
POST /hello
a body nobody reads
--- response_body
Hello, World!
--- error_code: 200



=== TEST 6: one library in several locations is opened once
--- config
location /one {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
location /two {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request
GET /two
--- response_body
Hello, World!
--- grep_error_log eval
qr/gateway: app "hello" ready/
--- grep_error_log_out
gateway: app "hello" ready



=== TEST 7: one library serves every location that names it
--- config
location /one {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
location /two {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- pipelined_requests eval
["GET /one", "GET /two"]
--- response_body eval
["Hello, World!\n", "Hello, World!\n"]



=== TEST 8: nested locations do not inherit the app
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libhello.so;
    location /app/static/ {
        return 200 "static\n";
    }
}
--- request
GET /app/static/x
--- response_body
static



=== TEST 9: two apps side by side
--- config
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
location /environ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- pipelined_requests eval
["GET /hello", "GET /environ"]
--- response_body_like eval
["^Hello, World!\n\$", '"REQUEST_METHOD": "GET"']
