# The environ an app receives: method, mount point, path, query, protocol and headers.
use Test::Nginx::Socket 'no_plan';

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: the basic CGI keys
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- request
GET /app/users/42?sort=name&x=%20y
--- response_body_like
"PATH_INFO": "/users/42",.*"QUERY_STRING": "sort=name&x=%20y",.*"REQUEST_METHOD": "GET",.*"REQUEST_URI": "/app/users/42\?sort=name&x=%20y",.*"SCRIPT_NAME": "/app",.*"SERVER_PROTOCOL": "HTTP/1.1",
--- response_headers
Content-Type: application/json
--- error_code: 200



=== TEST 2: the method as sent
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- request
DELETE /app/item
--- response_body_like
"REQUEST_METHOD": "DELETE",



=== TEST 3: the mount point itself: PATH_INFO is empty
--- config
location /app {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- request
GET /app
--- response_body_like
"PATH_INFO": "",.*"QUERY_STRING": "",.*"REQUEST_METHOD": "GET",.*"REQUEST_URI": "/app",.*"SCRIPT_NAME": "/app",



=== TEST 4: the mount point splits only at a segment boundary
--- config
location /app {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- request
GET /application
--- response_body_like
"PATH_INFO": "/application",(?s:.*)"SCRIPT_NAME": "",



=== TEST 5: mounted at the root, SCRIPT_NAME is empty
--- config
location / {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- request
GET /a/b
--- response_body_like
"PATH_INFO": "/a/b",(?s:.*)"SCRIPT_NAME": "",



=== TEST 6: an exact location has no mount point
--- config
location = /x {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- request
GET /x
--- response_body_like
"PATH_INFO": "/x",(?s:.*)"SCRIPT_NAME": "",



=== TEST 7: a regex location has no mount point
--- config
location ~ ^/re/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- request
GET /re/x
--- response_body_like
"PATH_INFO": "/re/x",(?s:.*)"SCRIPT_NAME": "",



=== TEST 8: PATH_INFO is decoded, QUERY_STRING and REQUEST_URI stay raw
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- request
GET /app/a%20b?q=%2F
--- response_body_like
"PATH_INFO": "/a b",.*"QUERY_STRING": "q=%2F",(?s:.*)"REQUEST_URI": "/app/a%20b\?q=%2F",



=== TEST 9: request headers become HTTP_* keys; Content-Type and Content-Length do not
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- request eval
"POST /app/form\na=1"
--- more_headers
X-Custom-Thing: some value
Content-Type: application/x-www-form-urlencoded
--- response_body_like
(?s)\A(?!.*HTTP_CONTENT_).*"CONTENT_LENGTH": "3",.*"CONTENT_TYPE": "application/x-www-form-urlencoded",.*"HTTP_HOST": "localhost",.*"HTTP_X_CUSTOM_THING": "some value",



=== TEST 10: HTTP/1.0
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- raw_request eval
"GET /app/ HTTP/1.0\r\n\r\n"
--- response_body_like
"SERVER_PROTOCOL": "HTTP/1.0",
