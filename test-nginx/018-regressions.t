# Regressions found by the reliability work (fuzzing, the soak, the hostile suite), one
# block each, named after what broke. See docs/RELIABILITY.md.
use Test::Nginx::Socket 'no_plan';

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a stream of more than 8 small chunks arrives whole (HTTP/1.1)
Found by scripts/soak: with each chunk in a buffer of its own and at most 8 buffers with
nginx, 8 small chunks (under postpone_output together) were never sent, the pump waited
for a write event that never came, and the request hung until the client gave up.
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- request
GET /s/lines?n=9
--- response_body eval
CORE::join '', map { "line $_\n" } 1 .. 9
--- timeout: 5



=== TEST 2: ... and over HTTP/1.0, with 200 small chunks
--- config
location /s/ {
    gateway_app $TEST_NGINX_APPS/libstream.so;
}
--- request
GET /s/lines?n=200 HTTP/1.0
--- response_body eval
CORE::join '', map { "line $_\n" } 1 .. 200
--- timeout: 5



=== TEST 3: a template name that names no template is a 404, not a logged 500
Found by test-nginx/018-hostile.t: the names of /notes/pages/{*name} come from the URL, so
any client could make the app answer 500 and log an [error] line.
--- config
location /notes/ {
    gateway_app $TEST_NGINX_APPS/libnotes.so;
    gateway_app_param secret_key "a test key of thirty-two bytes..";
    gateway_app_param attachments html/attachments;
    gateway_app_param database html/notes.sqlite3;
    gateway_app_param templates $TEST_NGINX_EXAMPLES/notes/templates;
}
--- request
GET /notes/pages/no-such-page.html
--- error_code: 404
--- no_error_log
[error]
