# Run by scripts/test with TEST_NGINX_APPS pointing at apps built in their own cargo project,
# with their own copy of the SDK and their own target dir: an app needs nothing of the
# module's build to load into it.
use Test::Nginx::Socket 'no_plan';

run_tests();

__DATA__

=== TEST 1: a separately built app loads and serves
--- config
location /hello {
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- request
GET /hello
--- response_body
Hello, World!
--- error_code: 200
--- no_error_log
[error]
