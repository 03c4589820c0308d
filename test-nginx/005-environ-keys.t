# The environ keys one by one: the request line as sent, the mount point split, the
# decoded path, the server and connection keys, REMOTE_USER and the gateway.* extras.
# libenviron answers with the environ as JSON with sorted keys, or, for the query
# "key=NAME", with that one value's raw bytes (404 when the key is absent).
use Test::Nginx::Socket 'no_plan';

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: REQUEST_URI and QUERY_STRING stay as sent, PATH_INFO is decoded
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- request
GET /app/a%2Fb/c%20d+e?x=1+2&y=%2F%20z
--- response_body_like
"PATH_INFO": "/a/b/c d\+e",\s+"QUERY_STRING": "x=1\+2&y=%2F%20z",(?s:.*)"REQUEST_METHOD": "GET",\s+"REQUEST_SCHEME": "http",\s+"REQUEST_URI": "/app/a%2Fb/c%20d\+e\?x=1\+2&y=%2F%20z",\s+"SCRIPT_NAME": "/app",
--- error_code: 200



=== TEST 2: an empty query: QUERY_STRING is empty, REQUEST_URI keeps the "?"
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- request
GET /app/x?
--- response_body_like
"PATH_INFO": "/x",\s+"QUERY_STRING": "",(?s:.*)"REQUEST_URI": "/app/x\?",



=== TEST 3: REQUEST_METHOD for other methods, HTTP/1.0 and HTTP/1.1
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- pipelined_requests eval
["OPTIONS /app/o", "PATCH /app/p\nx", "PROPFIND /app/q", "GET /app/r HTTP/1.0"]
--- response_body_like eval
[
'"PATH_INFO": "/o",(?s:.*)"REQUEST_METHOD": "OPTIONS",(?s:.*)"SERVER_PROTOCOL": "HTTP/1.1",',
'"PATH_INFO": "/p",(?s:.*)"REQUEST_METHOD": "PATCH",(?s:.*)"SERVER_PROTOCOL": "HTTP/1.1",',
'"PATH_INFO": "/q",(?s:.*)"REQUEST_METHOD": "PROPFIND",(?s:.*)"SERVER_PROTOCOL": "HTTP/1.1",',
'"PATH_INFO": "/r",(?s:.*)"REQUEST_METHOD": "GET",(?s:.*)"SERVER_PROTOCOL": "HTTP/1.0",',
]



=== TEST 4: location /app/ (trailing slash) mounts at /app
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- pipelined_requests eval
["GET /app/", "GET /app/x/y/"]
--- response_body_like eval
[
'"PATH_INFO": "/",(?s:.*)"SCRIPT_NAME": "/app",',
'"PATH_INFO": "/x/y/",(?s:.*)"SCRIPT_NAME": "/app",',
]



=== TEST 5: location /app (no slash): the mount point, below it, and a longer segment
--- config
location /app {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- pipelined_requests eval
["GET /app", "GET /app/", "GET /app/x", "GET /application", "GET /app.json"]
--- response_body_like eval
[
'"PATH_INFO": "",(?s:.*)"SCRIPT_NAME": "/app",',
'"PATH_INFO": "/",(?s:.*)"SCRIPT_NAME": "/app",',
'"PATH_INFO": "/x",(?s:.*)"SCRIPT_NAME": "/app",',
'"PATH_INFO": "/application",(?s:.*)"SCRIPT_NAME": "",',
'"PATH_INFO": "/app.json",(?s:.*)"SCRIPT_NAME": "",',
]



=== TEST 6: a deeper prefix location mounts at its whole name
--- config
location /api/v1/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- request
GET /api/v1/users/7
--- response_body_like
"PATH_INFO": "/users/7",(?s:.*)"SCRIPT_NAME": "/api/v1",



=== TEST 7: gateway_script_name overrides a prefix location's mount point
--- config
location /api/v1/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
    gateway_script_name /api;
}
--- pipelined_requests eval
["GET /api/v1/users/7", "GET /api/v1/"]
--- response_body_like eval
[
'"PATH_INFO": "/v1/users/7",(?s:.*)"SCRIPT_NAME": "/api",',
'"PATH_INFO": "/v1/",(?s:.*)"SCRIPT_NAME": "/api",',
]



=== TEST 8: gateway_script_name gives an exact location a mount point
--- config
location = /svc/status {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
    gateway_script_name /svc;
}
--- request
GET /svc/status?full=1
--- response_body_like
"PATH_INFO": "/status",\s+"QUERY_STRING": "full=1",(?s:.*)"REQUEST_URI": "/svc/status\?full=1",\s+"SCRIPT_NAME": "/svc",



=== TEST 9: gateway_script_name gives a regex location a mount point
--- config
location ~ ^/re/\d+$ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
    gateway_script_name /re;
}
--- pipelined_requests eval
["GET /re/42", "GET /re/7"]
--- response_body_like eval
[
'"PATH_INFO": "/42",(?s:.*)"SCRIPT_NAME": "/re",',
'"PATH_INFO": "/7",(?s:.*)"SCRIPT_NAME": "/re",',
]



=== TEST 10: a regex location without gateway_script_name has no mount point
--- config
location ~ ^/rx/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- request
GET /rx/a/b
--- response_body_like
"PATH_INFO": "/rx/a/b",(?s:.*)"SCRIPT_NAME": "",



=== TEST 11: gateway_script_name splits only at a segment boundary
--- config
location / {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
    gateway_script_name /app;
}
--- pipelined_requests eval
["GET /app", "GET /app/x", "GET /application", "GET /other/app"]
--- response_body_like eval
[
'"PATH_INFO": "",(?s:.*)"SCRIPT_NAME": "/app",',
'"PATH_INFO": "/x",(?s:.*)"SCRIPT_NAME": "/app",',
'"PATH_INFO": "/application",(?s:.*)"SCRIPT_NAME": "",',
'"PATH_INFO": "/other/app",(?s:.*)"SCRIPT_NAME": "",',
]



=== TEST 12: the split uses nginx's normalised path, REQUEST_URI the raw one
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- pipelined_requests eval
["GET /ap%70/x", "GET /app//x", "GET /app/y/../x", "GET /app/./x"]
--- response_body_like eval
[
'"PATH_INFO": "/x",(?s:.*)"REQUEST_URI": "/ap%70/x",\s+"SCRIPT_NAME": "/app",',
'"PATH_INFO": "/x",(?s:.*)"REQUEST_URI": "/app//x",\s+"SCRIPT_NAME": "/app",',
'"PATH_INFO": "/x",(?s:.*)"REQUEST_URI": "/app/y/\.\./x",\s+"SCRIPT_NAME": "/app",',
'"PATH_INFO": "/x",(?s:.*)"REQUEST_URI": "/app/\./x",\s+"SCRIPT_NAME": "/app",',
]



=== TEST 13: PATH_INFO decoding: %20, %2F, + and UTF-8
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- pipelined_requests eval
["GET /app/a%20b", "GET /app/a%2Fb", "GET /app/a+b", "GET /app/caf%C3%A9"]
--- response_body_like eval
[
'"PATH_INFO": "/a b",(?s:.*)"REQUEST_URI": "/app/a%20b",',
'"PATH_INFO": "/a/b",(?s:.*)"REQUEST_URI": "/app/a%2Fb",',
'"PATH_INFO": "/a\+b",(?s:.*)"REQUEST_URI": "/app/a\+b",',
'"PATH_INFO": "/caf\xC3\xA9",(?s:.*)"REQUEST_URI": "/app/caf%C3%A9",',
]



=== TEST 14: PATH_INFO bytes exactly: decoded UTF-8, and invalid UTF-8 as the raw byte
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- pipelined_requests eval
["GET /app/caf%C3%A9?key=PATH_INFO", "GET /app/%E9?key=PATH_INFO", "GET /app/x%FFy?key=PATH_INFO", "GET /app/a%2Fb?key=REQUEST_URI"]
--- response_body eval
["/caf\xC3\xA9", "/\xE9", "/x\xFFy", "/app/a%2Fb?key=REQUEST_URI"]
--- response_headers eval
["Content-Type: application/octet-stream", "Content-Type: application/octet-stream", "Content-Type: application/octet-stream", "Content-Type: application/octet-stream"]



=== TEST 15: an absent key answers 404 in the key=NAME mode
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- pipelined_requests eval
["GET /app/?key=HTTPS", "GET /app/?key=REMOTE_USER", "GET /app/?key=CONTENT_LENGTH",
 "GET /app/?key=CONTENT_TYPE", "GET /app/?key=NO_SUCH_KEY", "GET /app/?key=REQUEST_METHOD"]
--- error_code eval
[404, 404, 404, 404, 404, 200]



=== TEST 16: the server and connection keys
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- request
GET /app/
--- response_body_like
\A(?!.*"HTTPS")(?!.*"REMOTE_USER")(?!.*"CONTENT_)(?s:.*)"REMOTE_ADDR": "127\.0\.0\.1",\s+"REMOTE_PORT": "\d+",\s+"REQUEST_METHOD": "GET",\s+"REQUEST_SCHEME": "http",(?s:.*)"SERVER_NAME": "localhost",\s+"SERVER_PORT": "$ServerPort",(?s:.*)"gateway\.url_scheme": "http",



=== TEST 17: the server keys exactly, byte for byte
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- pipelined_requests eval
["GET /app/?key=SERVER_NAME", "GET /app/?key=SERVER_PORT", "GET /app/?key=REMOTE_ADDR", "GET /app/?key=REQUEST_SCHEME", "GET /app/?key=gateway.url_scheme", "GET /app/?key=REMOTE_PORT"]
--- response_body_like eval
["\\Alocalhost\\z", '\A$ServerPort\z', "\\A127\\.0\\.0\\.1\\z", "\\Ahttp\\z", "\\Ahttp\\z", "\\A[1-9][0-9]{0,4}\\z"]



=== TEST 18: SERVER_NAME is the server's name, not the Host header, which is HTTP_HOST
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- request
GET /app/
--- more_headers
Host: other.example
--- response_body_like
"HTTP_HOST": "other\.example",(?s:.*)"SERVER_NAME": "localhost",



=== TEST 19: REMOTE_USER is the user auth_basic authenticated
--- config
location /app/ {
    auth_basic "private";
    auth_basic_user_file ../html/htpasswd;
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- user_files
>>> htpasswd
alice:{PLAIN}secret
bob:{PLAIN}hunter2
--- pipelined_requests eval
["GET /app/", "GET /app/?key=REMOTE_USER", "GET /app/?key=REMOTE_USER", "GET /app/"]
--- more_headers eval
# alice:secret, bob:hunter2, alice:wrong, none
["Authorization: Basic YWxpY2U6c2VjcmV0", "Authorization: Basic Ym9iOmh1bnRlcjI=",
 "Authorization: Basic YWxpY2U6d3Jvbmc=", ""]
--- error_code eval
[200, 200, 401, 401]
--- response_body_like eval
['"REMOTE_USER": "alice",', "\\Abob\\z", "401 Authorization Required", "401 Authorization Required"]



=== TEST 20: no REMOTE_USER without authentication, even with an Authorization header
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- pipelined_requests eval
["GET /app/", "GET /app/?key=REMOTE_USER"]
--- more_headers eval
# alice:secret
["Authorization: Basic YWxpY2U6c2VjcmV0", "Authorization: Basic YWxpY2U6c2VjcmV0"]
--- error_code eval
[200, 404]
--- response_body_like eval
['\A(?!.*"REMOTE_USER")(?s:.*)"HTTP_AUTHORIZATION": "Basic YWxpY2U6c2VjcmV0",', ""]



=== TEST 21: the gateway.* extras
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- request
GET /app/
--- response_body_like
"gateway\.app": "environ",\s+"gateway\.nginx_version": "\d+\.\d+\.\d+",\s+"gateway\.request_id": "[0-9a-f]{32}",\s+"gateway\.runs_on": "event_loop",\s+"gateway\.url_scheme": "http",\s+"gateway\.version": "\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?"\n\}



=== TEST 22: over TLS, HTTPS is "on" and the scheme is https
A second server speaks TLS; the test's plain location proxies to it. The certificate is
self-signed and only for this test.
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1 ssl;
    server_name tls.test;
    ssl_certificate ../html/cert.pem;
    ssl_certificate_key ../html/key.pem;
    location /app/ {
        gateway_app $TEST_NGINX_APPS/libenviron.so;
    }
}
--- config
location /app/ {
    proxy_pass https://127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    # nginx keeps a reused TLS session until exit without freeing it, which valgrind counts
    # as a leak; this test is not about sessions.
    proxy_ssl_session_reuse off;
}
--- user_files
>>> cert.pem
-----BEGIN CERTIFICATE-----
MIIBfzCCASWgAwIBAgIUGyLtQr7tuU223qxFRfySO/fkMBcwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyMjA3MzMwNVoYDzIxMjYxMDI5
MDczMzA1WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAASqA11M0yBM9VpbmnSIaVbKGPso3XnrNB+gRpNSusf0m3TMklnT5N6v
GOIXmnGQT5oDfeoIo8mcoHsYCa7rqKt5o1MwUTAdBgNVHQ4EFgQUOYW9lrocdJiC
sJ2Thre7cjQL+1MwHwYDVR0jBBgwFoAUOYW9lrocdJiCsJ2Thre7cjQL+1MwDwYD
VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiA3cYmroa92IsvESJcEK5/m
Dl/qqAFgHEmy4o/BdrHfOAIhAPw0hU1gmw2HKj+zIQZnFde94e06cg691IGTGLuk
smXL
-----END CERTIFICATE-----
>>> key.pem
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgi2a/RjdSKqav8zXc
eBuIJ4zxx6/4Vam0phXi5tdRVbahRANCAASqA11M0yBM9VpbmnSIaVbKGPso3Xnr
NB+gRpNSusf0m3TMklnT5N6vGOIXmnGQT5oDfeoIo8mcoHsYCa7rqKt5
-----END PRIVATE KEY-----
--- request
GET /app/
--- response_body_like
"HTTPS": "on",(?s:.*)"REQUEST_SCHEME": "https",(?s:.*)"SERVER_NAME": "tls\.test",(?s:.*)"gateway\.url_scheme": "https",



=== TEST 23: gateway.request_id is nginx's $request_id of the same request
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
    gateway_param X_NGINX_REQUEST_ID $request_id;
    add_header X-Id $request_id always;
}
--- request
GET /app/
--- response_headers_like
X-Id: [0-9a-f]{32}
--- response_body_like
"X_NGINX_REQUEST_ID": "([0-9a-f]{32})",(?s:.*)"gateway\.request_id": "\1",



=== TEST 24: a $request_id nginx made before the content phase is the one the app sees
--- config
location /app/ {
    set $early_id $request_id;
    gateway_app $TEST_NGINX_APPS/libenviron.so;
    gateway_param X_EARLY_ID $early_id;
}
--- request
GET /app/
--- response_body_like
"X_EARLY_ID": "([0-9a-f]{32})",(?s:.*)"gateway\.request_id": "\1",



=== TEST 25: gateway.nginx_version is the version of the nginx serving the request
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
    gateway_param X_SERVER_SOFTWARE $nginx_version;
}
--- request
GET /app/
--- response_body_like
"X_SERVER_SOFTWARE": "(\d+\.\d+\.\d+)",(?s:.*)"gateway\.nginx_version": "\1",
