# examples/jokes through nginx: a JSON API mounted at /jokes (list, one by id, add by POST),
# its jokes kept in a SQLite file under nginx's prefix (html/, which the harness recreates
# for every test), and clear JSON errors.
use Test::Nginx::Socket 'no_plan';

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: the bare mount point lists the seed jokes as JSON
--- config
location /jokes {
    gateway_app $TEST_NGINX_APPS/libjokes.so;
    gateway_app_param database html/jokes.sqlite3;
}
--- request
GET /jokes
--- response_headers
Content-Type: application/json
--- response_body eval
'[{"id":1,"text":"Why do programmers prefer dark mode? Because light attracts bugs.","author":"anonymous"},'
. q{{"id":2,"text":"There are 10 kinds of people: those who understand binary and those who don't.","author":"anonymous"},}
. '{"id":3,"text":"A SQL query walks into a bar, goes up to two tables and asks: may I join you?","author":"anonymous"}]'



=== TEST 2: one joke by id; a missing one is a 404 that says which
/jokesmith is not below the mount point: the app sees all of it as its path, so as the id
"jokesmith".
--- config
location /jokes {
    gateway_app $TEST_NGINX_APPS/libjokes.so;
    gateway_app_param database html/jokes.sqlite3;
}
--- pipelined_requests eval
["GET /jokes/2", "GET /jokes/99", "GET /jokes/abc", "GET /jokes/", "GET /jokes/2/more", "GET /jokesmith"]
--- error_code eval
[200, 404, 404, 200, 404, 404]
--- response_body_like eval
["^\\{\"id\":2,\"text\":\"There are 10 kinds of people: [^\"]*\",\"author\":\"anonymous\"\\}\$",
 "^\\{\"error\":\"no joke with id 99\"\\}\$",
 "^\\{\"error\":\"no joke with id abc\"\\}\$",
 "^\\[\\{\"id\":1,.*\\{\"id\":3,[^\\]]*\\]\$",
 "^\\{\"error\":\"not found\"\\}\$",
 "^\\{\"error\":\"no joke with id jokesmith\"\\}\$"]



=== TEST 3: a POSTed joke is created (201, with its Location) and the database keeps it
--- config
location /jokes {
    gateway_app $TEST_NGINX_APPS/libjokes.so;
    gateway_app_param database html/jokes.sqlite3;
}
--- more_headers
Content-Type: application/json
--- pipelined_requests eval
["POST /jokes\n{\"text\": \"I would tell a UDP joke, but you might not get it.\", \"author\": \"Ada\"}",
 "GET /jokes/4",
 "POST /jokes/\n{\"text\": \"Knock knock. Race condition. Who's there?\"}",
 "GET /jokes"]
--- error_code eval
[201, 200, 201, 200]
--- response_body_like eval
["^\\{\"id\":4,\"text\":\"I would tell a UDP joke, but you might not get it.\",\"author\":\"Ada\"\\}\$",
 "^\\{\"id\":4,\"text\":\"I would tell a UDP joke, but you might not get it.\",\"author\":\"Ada\"\\}\$",
 "^\\{\"id\":5,\"text\":\"Knock knock. Race condition. Who's there\\?\",\"author\":\"anonymous\"\\}\$",
 "^\\[\\{\"id\":1,.*\\{\"id\":4,\"text\":\"I would tell a UDP joke, but you might not get it.\",\"author\":\"Ada\"\\},\\{\"id\":5,[^\\]]*\\]\$"]



=== TEST 4: the 201 links to the new joke
--- config
location /jokes {
    gateway_app $TEST_NGINX_APPS/libjokes.so;
    gateway_app_param database html/jokes.sqlite3;
}
--- more_headers
Content-Type: application/json
--- request
POST /jokes
{"text": "To understand recursion, see: to understand recursion."}
--- error_code: 201
--- response_headers
Content-Type: application/json
Location: /jokes/4
--- response_body eval
'{"id":4,"text":"To understand recursion, see: to understand recursion.","author":"anonymous"}'



=== TEST 5: malformed JSON is a 422 that says why, with the standard reason phrase
nginx has no phrase of its own for 422: the app sets it.
--- config
location /jokes {
    gateway_app $TEST_NGINX_APPS/libjokes.so;
    gateway_app_param database html/jokes.sqlite3;
}
--- more_headers
Content-Type: application/json
--- request
POST /jokes
{"text": "unfinished
--- error_code: 422
--- raw_response_headers_like eval
"^HTTP/1.1 422 Unprocessable Entity\r\n"
--- response_headers
Content-Type: application/json
--- response_body eval
'{"error":"invalid joke: EOF while parsing a string at line 1 column 20"}'



=== TEST 6: missing, unknown, empty or mistyped fields are a 422 that says which; nothing is added
--- config
location /jokes {
    gateway_app $TEST_NGINX_APPS/libjokes.so;
    gateway_app_param database html/jokes.sqlite3;
}
--- more_headers
Content-Type: application/json
--- pipelined_requests eval
["POST /jokes\n{\"author\": \"Ada\"}",
 "POST /jokes\n{\"txt\": \"typo\"}",
 "POST /jokes\n{\"text\": \"   \"}",
 "POST /jokes\n{\"text\": 42}",
 "POST /jokes\n[\"an array is not a joke\"]",
 "GET /jokes/4"]
--- error_code eval
[422, 422, 422, 422, 422, 404]
--- response_body eval
['{"error":"invalid joke: missing field `text`"}',
 '{"error":"invalid joke: unknown field `txt`, expected `text` or `author`"}',
 '{"error":"invalid joke: \"text\" must have 1 to 500 characters"}',
 '{"error":"invalid joke: invalid type: integer `42`, expected a string"}',
 '{"error":"invalid joke: expected a JSON object with \"text\" and optionally \"author\", got an array"}',
 '{"error":"no joke with id 4"}']



=== TEST 7: a POST without a body is a 422 too
--- config
location /jokes {
    gateway_app $TEST_NGINX_APPS/libjokes.so;
    gateway_app_param database html/jokes.sqlite3;
}
--- more_headers
Content-Type: application/json
Content-Length: 0
--- request
POST /jokes
--- error_code: 422
--- response_body eval
'{"error":"invalid joke: EOF while parsing a value at line 1 column 0"}'



=== TEST 8: a body that is not JSON is a 415
--- config
location /jokes {
    gateway_app $TEST_NGINX_APPS/libjokes.so;
    gateway_app_param database html/jokes.sqlite3;
}
--- more_headers
Content-Type: text/plain
--- request
POST /jokes
{"text": "x"}
--- error_code: 415
--- response_body eval
'{"error":"the request body must be application/json"}'



=== TEST 9: other methods are a 405 that lists the allowed ones
--- config
location /jokes {
    gateway_app $TEST_NGINX_APPS/libjokes.so;
    gateway_app_param database html/jokes.sqlite3;
}
--- pipelined_requests eval
["PUT /jokes", "DELETE /jokes/1"]
--- error_code eval
[405, 405]
--- response_headers eval
["Allow: GET, POST, HEAD", "Allow: GET, HEAD"]



=== TEST 10: max_jokes bounds what the book keeps
--- config
location /jokes {
    gateway_app $TEST_NGINX_APPS/libjokes.so;
    gateway_app_param database html/jokes.sqlite3;
    gateway_app_param max_jokes 4;
}
--- more_headers
Content-Type: application/json
--- pipelined_requests eval
["POST /jokes\n{\"text\": \"fits\"}", "POST /jokes\n{\"text\": \"too many\"}"]
--- error_code eval
[201, 507]
--- response_body eval
['{"id":4,"text":"fits","author":"anonymous"}', '{"error":"the joke book is full (4 jokes)"}']



=== TEST 11: an invalid max_jokes makes nginx refuse the configuration, naming the line
--- config
location /jokes {
    gateway_app $TEST_NGINX_APPS/libjokes.so;
    gateway_app_param database html/jokes.sqlite3;
    gateway_app_param max_jokes many;
}
--- must_die
--- error_log eval
qr{\[emerg\] .*gateway: app "jokes" refused the settings of its location: check failed: setting max_jokes = "many" is invalid: invalid digit found in string in \S+/nginx\.conf:\d+}