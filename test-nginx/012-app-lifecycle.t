# App instances: built once per worker from gateway_app_param settings; an init that fails or
# panics leaves its location answering 503 and the worker serving everything else.
use Test::Nginx::Socket 'no_plan';

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: settings reach the app's init; its state is shared by the worker's requests
--- config
location /greet/ {
    gateway_app $TEST_NGINX_APPS/libgreeting.so;
    gateway_app_param greeting "Good morning";
    gateway_app_param punctuation "!";
}
--- pipelined_requests eval
["GET /greet/Ada", "GET /greet/"]
--- response_body eval
["Good morning, Ada! (#1)\n", "Good morning, stranger! (#2)\n"]
--- no_error_log
[error]



=== TEST 2: one library, two locations, two instances with their own settings and state
--- config
location /en/ {
    gateway_app $TEST_NGINX_APPS/libgreeting.so;
    gateway_app_param greeting Hello;
}
location /fr/ {
    gateway_app $TEST_NGINX_APPS/libgreeting.so;
    gateway_app_param greeting Bonjour;
}
--- pipelined_requests eval
["GET /en/Ada", "GET /fr/Ada", "GET /en/Bob"]
--- response_body eval
["Hello, Ada. (#1)\n", "Bonjour, Ada. (#1)\n", "Hello, Bob. (#2)\n"]



=== TEST 3: a failing init: 503, with the reason logged
--- config
location /greet/ {
    gateway_app $TEST_NGINX_APPS/libgreeting.so;
}
--- request
GET /greet/Ada
--- error_code: 503
--- response_body_like: 503 Service Temporarily Unavailable
--- error_log eval
qr/\[error\] .*gateway: app "greeting" failed to start in this worker, its location answers 503: init failed: missing setting: add `gateway_app_param greeting \.\.\.;` to the location/



=== TEST 4: a failing init leaves other locations serving
--- config
location /greet/ {
    gateway_app $TEST_NGINX_APPS/libgreeting.so;
}
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- pipelined_requests eval
["GET /greet/Ada", "GET /hello"]
--- error_code eval
[503, 200]
--- response_body_like eval
["503 Service", "^Hello, World!\n\$"]



=== TEST 5: a panicking init: 503, with the panic logged
--- config
location /broken {
    gateway_app $TEST_NGINX_APPS/libinit_panic.so;
}
--- request
GET /broken
--- error_code: 503
--- error_log eval
qr/\[error\] .*gateway: app "init-panic" failed to start in this worker, its location answers 503: init panicked at test-nginx\/fixtures\/init-panic\/src\/lib\.rs:\d+:\d+: cannot reach the database/
--- no_error_log
[alert]



=== TEST 6: after a panicking init the worker serves on
--- config
location /broken {
    gateway_app $TEST_NGINX_APPS/libinit_panic.so;
}
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- pipelined_requests eval
["GET /broken", "GET /hello", "GET /broken"]
--- error_code eval
[503, 200, 503]



=== TEST 7: gateway_app_param needs a name and a value
--- config
location /greet/ {
    gateway_app $TEST_NGINX_APPS/libgreeting.so;
    gateway_app_param greeting;
}
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid number of arguments in "gateway_app_param" directive in \S+/nginx\.conf:\d+}
