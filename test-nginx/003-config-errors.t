# A bad app fails the configuration check, with an [emerg] naming the library and the
# nginx.conf line, before any request is served.
use Test::Nginx::Socket 'no_plan';

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a missing library
--- config
location /app {
    gateway_app $TEST_NGINX_APPS/libdoes_not_exist.so;
}
--- must_die
--- error_log eval
qr{\[emerg\] .*cannot open app library "\S*/libdoes_not_exist\.so": No such file or directory \(os error 2\) in \S+/nginx\.conf:\d+}



=== TEST 2: a library without the entry symbol
--- config
location /app {
    gateway_app $TEST_NGINX_APPS/libno_entry.so;
}
--- must_die
--- error_log eval
qr{\[emerg\] .*"\S*/libno_entry\.so" is not a gateway app: it exports no "ngx_gateway_app" symbol .* in \S+/nginx\.conf:\d+}



=== TEST 3: an app built for another ABI version
--- config
location /app {
    gateway_app $TEST_NGINX_APPS/libabi_mismatch.so;
}
--- must_die
--- error_log eval
qr{\[emerg\] .*app library "\S*/libabi_mismatch\.so" was built for gateway ABI 2, this module speaks ABI 1.* in \S+/nginx\.conf:\d+}



=== TEST 4: a file that is not a shared library at all
--- config
location /app {
    gateway_app $TEST_NGINX_APPS/libhello.d;
}
--- must_die
--- error_log eval
qr{\[emerg\] .*cannot open app library "\S*/libhello\.d": invalid ELF header in \S+/nginx\.conf:\d+}



=== TEST 5: gateway_app twice in one location
--- config
location /app {
    gateway_app $TEST_NGINX_APPS/libhello.so;
    gateway_app $TEST_NGINX_APPS/libhello.so;
}
--- must_die
--- error_log eval
qr{\[emerg\] .*"gateway_app" directive is duplicate in \S+/nginx\.conf:\d+}



=== TEST 6: gateway_app outside a location
--- http_config
gateway_app $TEST_NGINX_APPS/libhello.so;
--- config
--- must_die
--- error_log eval
qr{\[emerg\] .*"gateway_app" directive is not allowed here in \S+/nginx\.conf:\d+}



=== TEST 7: gateway_app without a path
--- config
location /app {
    gateway_app;
}
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid number of arguments in "gateway_app" directive in \S+/nginx\.conf:\d+}
