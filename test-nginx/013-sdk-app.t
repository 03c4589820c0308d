# An SDK app under nginx: routes below the mount point, a form that redirects, a JSON API
# whose errors are JSON (a blueprint's error handler), templates with escaping, the app's own
# 404 page, an after hook's and a layer's headers, a login, and notes kept in a SQLite file under nginx's prefix (html/, which the
# harness recreates for every test). The logged-in flow, with its session cookie, is in
# 031-notes-flow.t.
use Test::Nginx::Socket 'no_plan';

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: the page renders from templates under the mount point
--- config
location /notes/ {
    gateway_app $TEST_NGINX_APPS/libnotes.so;
    gateway_app_param secret_key "a test key of thirty-two bytes..";
    gateway_app_param attachments html/attachments;
    gateway_app_param database html/notes.sqlite3;
    gateway_app_param templates $TEST_NGINX_EXAMPLES/notes/templates;
    gateway_app_param title "Team notes";
}
--- request
GET /notes/
--- response_headers
Content-Type: text/html; charset=utf-8
X-Content-Type-Options: nosniff
--- response_headers_like
Server-Timing: app;dur=\d+\.\d{3}
--- response_body_like
<title>Team notes</title>.*<a href="&#x2f;notes&#x2f;login" class="login">Log in</a>.*Hello, stranger\..*<li>No notes yet\.</li>



=== TEST 2: a form post without logging in is sent to the login page, and adds nothing
--- config
location /notes/ {
    gateway_app $TEST_NGINX_APPS/libnotes.so;
    gateway_app_param secret_key "a test key of thirty-two bytes..";
    gateway_app_param attachments html/attachments;
    gateway_app_param database html/notes.sqlite3;
    gateway_app_param templates $TEST_NGINX_EXAMPLES/notes/templates;
}
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- pipelined_requests eval
["POST /notes/\ntext=%3Cb%3Ebold%3C%2Fb%3E+ok", "GET /notes/?q=ok"]
--- error_code eval
[303, 200]
--- response_headers eval
["Location: /notes/login", ""]
--- response_body_like eval
["", "No notes yet\\."]



=== TEST 3: the JSON API: create, read, 404, 405 with Allow
--- config
location /api/ {
    gateway_app $TEST_NGINX_APPS/libnotes.so;
    gateway_app_param secret_key "a test key of thirty-two bytes..";
    gateway_app_param attachments html/attachments;
    gateway_app_param database html/notes.sqlite3;
    gateway_app_param templates $TEST_NGINX_EXAMPLES/notes/templates;
    gateway_script_name /api;
}
--- more_headers
Content-Type: application/json
--- pipelined_requests eval
["POST /api/api/notes\n{\"text\":\"buy milk\"}",
 "GET /api/api/notes/1",
 "GET /api/api/notes/9",
 "PUT /api/api/notes"]
--- error_code eval
[201, 200, 404, 405]
--- response_body eval
["{\"id\":1,\"text\":\"buy milk\"}", "{\"id\":1,\"text\":\"buy milk\"}", "{\"error\":\"no such note\"}", "{\"error\":\"method not allowed\"}"]



=== TEST 4: 405 lists the allowed methods
--- config
location /api/ {
    gateway_app $TEST_NGINX_APPS/libnotes.so;
    gateway_app_param secret_key "a test key of thirty-two bytes..";
    gateway_app_param attachments html/attachments;
    gateway_app_param database html/notes.sqlite3;
    gateway_app_param templates $TEST_NGINX_EXAMPLES/notes/templates;
}
--- request
DELETE /api/api/notes
--- error_code: 405
--- response_headers
Allow: GET, POST, HEAD



=== TEST 5: malformed JSON is a 400, from the app
--- config
location /notes/ {
    gateway_app $TEST_NGINX_APPS/libnotes.so;
    gateway_app_param secret_key "a test key of thirty-two bytes..";
    gateway_app_param attachments html/attachments;
    gateway_app_param database html/notes.sqlite3;
    gateway_app_param templates $TEST_NGINX_EXAMPLES/notes/templates;
}
--- more_headers
Content-Type: application/json
--- request
POST /notes/api/notes
{
--- error_code: 400
--- response_body_like: ^\{"error":"invalid JSON body



=== TEST 5b: the wrong content type is a 415
--- config
location /notes/ {
    gateway_app $TEST_NGINX_APPS/libnotes.so;
    gateway_app_param secret_key "a test key of thirty-two bytes..";
    gateway_app_param attachments html/attachments;
    gateway_app_param database html/notes.sqlite3;
    gateway_app_param templates $TEST_NGINX_EXAMPLES/notes/templates;
}
--- more_headers
Content-Type: text/plain
--- request
POST /notes/api/notes
{"text": "x"}
--- error_code: 415
--- response_body chomp
{"error":"the request body must be application/json"}



=== TEST 6: template names from the URL cannot leave the template directory
nginx resolves dot segments before the app sees the path; what reaches the app is refused by
the template loader, and the app answers its own 404 page.
--- config
location /notes/ {
    gateway_app $TEST_NGINX_APPS/libnotes.so;
    gateway_app_param secret_key "a test key of thirty-two bytes..";
    gateway_app_param attachments html/attachments;
    gateway_app_param database html/notes.sqlite3;
    gateway_app_param templates $TEST_NGINX_EXAMPLES/notes/templates;
}
--- pipelined_requests eval
["GET /notes/pages/about.html", "GET /notes/pages/.hidden", "GET /notes/pages/..%2F..%2FCargo.toml", "GET /notes/pages/%2E%2E/index.html"]
--- error_code eval
[200, 404, 404, 404]
--- response_body_like eval
["About Notes", "class=\"not-found\"", "404 Not Found", "class=\"not-found\""]



=== TEST 7: without its templates setting nginx refuses the configuration, naming the line
--- config
location /notes/ {
    gateway_app $TEST_NGINX_APPS/libnotes.so;
    gateway_app_param secret_key "a test key of thirty-two bytes..";
    gateway_app_param attachments html/attachments;
    gateway_app_param database html/notes.sqlite3;
}
--- must_die
--- error_log eval
qr{\[emerg\] .*gateway: app "notes" refused the settings of its location: check failed: missing setting: add `gateway_app_param templates \.\.\.;` to the location in \S+/nginx\.conf:\d+}
