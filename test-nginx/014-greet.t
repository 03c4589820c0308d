# examples/greet through nginx: an HTML page from a template, with a title from nginx.conf,
# the username from the query string (autoescaped) and a loop over a list.
use Test::Nginx::Socket 'no_plan';

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: the bare mount point greets a stranger, with the default title
--- config
location /greet {
    gateway_app $TEST_NGINX_APPS/libgreet.so;
    gateway_app_param templates $TEST_NGINX_EXAMPLES/greet/templates;
}
--- request
GET /greet
--- response_headers
Content-Type: text/html; charset=utf-8
--- response_body_like
<title>Greetings</title>.*<h1>Greetings</h1>.*<p>Hello, stranger! Here is the same in 5 languages:</p>



=== TEST 2: the username comes from the query string, the title from the settings, and the list is looped over in order
--- config
location /greet {
    gateway_app $TEST_NGINX_APPS/libgreet.so;
    gateway_app_param templates $TEST_NGINX_EXAMPLES/greet/templates;
    gateway_app_param title "Demo greetings";
}
--- request
GET /greet?username=Ada
--- response_body_like
<title>Demo greetings</title>.*<p>Hello, Ada!.*
<ul>
  <li lang="en">Hello, Ada! <small>\(English\)</small></li>
  <li lang="fr">Bonjour, Ada! <small>\(French\)</small></li>
  <li lang="es">Hola, Ada! <small>\(Spanish\)</small></li>
  <li lang="de">Hallo, Ada! <small>\(German\)</small></li>
  <li lang="it">Ciao, Ada! <small>\(Italian\)</small></li>
</ul>
<form method="get" action="&#x2f;greet/"><input name="username" value="Ada"><button>Greet me</button></form>



=== TEST 3: the username is escaped, percent-encoded or sent raw
The lookahead checks that no unescaped <script> is anywhere in the page.
--- config
location /greet {
    gateway_app $TEST_NGINX_APPS/libgreet.so;
    gateway_app_param templates $TEST_NGINX_EXAMPLES/greet/templates;
}
--- pipelined_requests eval
["GET /greet?username=%3Cscript%3Ealert(1)%3C%2Fscript%3E", "GET /greet/?username=<script>"]
--- error_code eval
[200, 200]
--- response_body_like eval
["^(?!.*<script>).*<p>Hello, &lt;script&gt;alert\\(1\\)&lt;&#x2f;script&gt;!.*<li lang=\"en\">Hello, &lt;script&gt;alert\\(1\\)&lt;&#x2f;script&gt;!",
 "^(?!.*<script>).*<p>Hello, &lt;script&gt;!.*value=\"&lt;script&gt;\""]



=== TEST 4: only the page itself is served: other paths are 404, other methods 405
`location /greet` also matches /greetings, but that is not below the mount point, so the app
sees all of it as its path.
--- config
location /greet {
    gateway_app $TEST_NGINX_APPS/libgreet.so;
    gateway_app_param templates $TEST_NGINX_EXAMPLES/greet/templates;
}
--- pipelined_requests eval
["GET /greet/", "GET /greet/other", "GET /greetings", "POST /greet", "GET /greet?username=a&username=b"]
--- error_code eval
[200, 404, 404, 405, 400]
--- response_body_like eval
["Hello, stranger!", "^not found\n\$", "^not found\n\$", "^method not allowed\n\$", "^invalid query string: duplicate field `username`\n\$"]



=== TEST 5: HEAD answers like GET, without the body
--- config
location /greet {
    gateway_app $TEST_NGINX_APPS/libgreet.so;
    gateway_app_param templates $TEST_NGINX_EXAMPLES/greet/templates;
}
--- request
HEAD /greet?username=Ada
--- response_headers
Content-Type: text/html; charset=utf-8
--- response_body



=== TEST 6: without its templates setting the app does not start: 503 and a clear log line
--- config
location /greet {
    gateway_app $TEST_NGINX_APPS/libgreet.so;
}
--- request
GET /greet
--- error_code: 503
--- error_log
gateway: app "greet" failed to start in this worker, its location answers 503: init failed: missing setting: add `gateway_app_param templates ...;` to the location
