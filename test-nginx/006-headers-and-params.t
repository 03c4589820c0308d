# Request headers as HTTP_* keys (names, repeats, Cookie, Content-Type, underscores) and
# gateway_param: values with variables, if_not_empty, overriding built-in keys,
# fastcgi_param-style inheritance and its configuration errors.
use Test::Nginx::Socket 'no_plan';

no_shuffle();
no_root_location();
run_tests();

__DATA__

=== TEST 1: header names: uppercased, "-" becomes "_", whatever case was sent
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- request
GET /app/
--- more_headers
Accept-Language: fr
x-lower-case: v1
X-MiXeD-CaSe: v2
X-Empty:
--- response_body_like
"HTTP_ACCEPT_LANGUAGE": "fr",\s+"HTTP_CONNECTION": "close",\s+"HTTP_HOST": "localhost",\s+"HTTP_X_EMPTY": "",\s+"HTTP_X_LOWER_CASE": "v1",\s+"HTTP_X_MIXED_CASE": "v2",



=== TEST 2: a repeated header is one key, its values joined with ", " in arrival order
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- request
GET /app/
--- more_headers
X-Multi: a
X-Other: o
x-multi: b
X-MULTI: c
--- response_body_like
"HTTP_X_MULTI": "a, b, c",\s+"HTTP_X_OTHER": "o",



=== TEST 3: repeated values exactly, byte for byte
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- request
GET /app/?key=HTTP_X_MULTI
--- more_headers
X-Multi: first value
X-Multi: second, with a comma
--- response_body chomp
first value, second, with a comma



=== TEST 4: repeated Cookie headers are joined with "; "
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- pipelined_requests eval
["GET /app/", "GET /app/?key=HTTP_COOKIE"]
--- more_headers
Cookie: a=1
X-Multi: x
Cookie: b=2; c=3
X-Multi: y
Cookie: d=4
--- response_body_like eval
['"HTTP_COOKIE": "a=1; b=2; c=3; d=4",(?s:.*)"HTTP_X_MULTI": "x, y",', '\Aa=1; b=2; c=3; d=4\z']



=== TEST 5: Content-Type is CONTENT_TYPE even without a body; no CONTENT_LENGTH then
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- request
GET /app/
--- more_headers
Content-Type: text/plain; charset=utf-8
--- response_body_like
\A(?!.*"HTTP_CONTENT_TYPE")(?!.*"CONTENT_LENGTH")(?s:.*)"CONTENT_TYPE": "text/plain; charset=utf-8",



=== TEST 6: header values are passed as raw bytes
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- raw_request eval
"GET /app/?key=HTTP_X_BYTES HTTP/1.1\r
Host: localhost\r
X-Bytes: caf\xE9 \xC3\xA9\t\x01end\r
Connection: close\r
\r
"
--- response_body eval
"caf\xE9 \xC3\xA9\t\x01end"



=== TEST 7: underscores_in_headers on: a name with "_" is dropped and cannot pass for "-"
--- config
underscores_in_headers on;
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- pipelined_requests eval
["GET /app/", "GET /app/", "GET /app/?key=HTTP_X_FOO"]
--- more_headers eval
["X_Foo: evil\nX-Foo: good", "X-Foo: good\nX_Foo: evil", "X_Foo: evil\nX-Foo: good"]
--- response_body_like eval
[
'\A(?!.*evil)(?s:.*)"HTTP_X_FOO": "good",',
'\A(?!.*evil)(?s:.*)"HTTP_X_FOO": "good",',
'\Agood\z',
]



=== TEST 8: underscores_in_headers on: the dropped header is logged at info level
--- config
underscores_in_headers on;
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- request
GET /app/
--- more_headers
X_Foo: evil
X-Foo: good
X_Under_Score: evil2
--- response_body_like
\A(?!.*evil)(?!.*UNDER)(?s:.*)"HTTP_X_FOO": "good",
--- error_log eval
[qr/\[info\] .*gateway: dropped request header "X_Foo"/,
 qr/\[info\] .*gateway: dropped request header "X_Under_Score"/]
--- no_error_log
[error]
[warn]



=== TEST 9: underscores_in_headers on: the underscore header alone gives no key at all
--- config
underscores_in_headers on;
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- pipelined_requests eval
["GET /app/", "GET /app/?key=HTTP_X_FOO"]
--- more_headers
X_Foo: evil
--- error_code eval
[200, 404]
--- response_body_like eval
['\A(?!.*evil)(?!.*"HTTP_X_FOO")(?s:.*)"HTTP_HOST": "localhost",', '\A(?!evil)']



=== TEST 10: by default nginx itself ignores names with "_": still no HTTP_X_FOO
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- request
GET /app/
--- more_headers
X_Foo: evil
X-Foo: good
--- response_body_like
\A(?!.*evil)(?s:.*)"HTTP_X_FOO": "good",



=== TEST 11: gateway_param: constants, variables and both mixed
--- config
location /app/ {
    root /srv/test-root;
    gateway_app $TEST_NGINX_APPS/libenviron.so;
    gateway_param APP_ENV production;
    gateway_param DOCUMENT_ROOT $document_root;
    gateway_param X_MIXED "x=$arg_x method=$request_method uri=$uri";
    gateway_param x.lower.dotted yes;
}
--- request
GET /app/page%201?x=42
--- response_body_like
"APP_ENV": "production",\s+"DOCUMENT_ROOT": "/srv/test-root",(?s:.*)"X_MIXED": "x=42 method=GET uri=/app/page 1",(?s:.*)"x\.lower\.dotted": "yes"\n\}



=== TEST 12: gateway_param values are evaluated for each request
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
    gateway_param X_VAL "<$http_x_val>";
}
--- pipelined_requests eval
["GET /app/?key=X_VAL", "GET /app/?key=X_VAL", "GET /app/?key=X_VAL"]
--- more_headers eval
["X-Val: 1", "X-Val: two", ""]
--- response_body eval
["<1>", "<two>", "<>"]



=== TEST 13: if_not_empty leaves the key out when the value is empty
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
    gateway_param X_ARG $arg_x if_not_empty;
    gateway_param X_ARG_ALWAYS $arg_x;
}
--- pipelined_requests eval
["GET /app/?x=1", "GET /app/", "GET /app/?x="]
--- response_body_like eval
[
'"X_ARG": "1",\s+"X_ARG_ALWAYS": "1",',
'\A(?!.*"X_ARG":)(?s:.*)"X_ARG_ALWAYS": "",',
'\A(?!.*"X_ARG":)(?s:.*)"X_ARG_ALWAYS": "",',
]



=== TEST 14: a gateway_param named like a built-in key overrides it
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
    gateway_param SERVER_NAME example.org;
    gateway_param REQUEST_SCHEME https;
    gateway_param REMOTE_ADDR $http_x_real_ip;
}
--- pipelined_requests eval
["GET /app/", "GET /app/?key=SERVER_NAME", "GET /app/?key=REQUEST_SCHEME", "GET /app/?key=REMOTE_ADDR"]
--- more_headers
X-Real-IP: 10.1.2.3
--- response_body_like eval
[
'"REMOTE_ADDR": "10\.1\.2\.3",(?s:.*)"REQUEST_SCHEME": "https",(?s:.*)"SERVER_NAME": "example\.org",',
'\Aexample\.org\z',
'\Ahttps\z',
'\A10\.1\.2\.3\z',
]



=== TEST 15: a location without gateway_param inherits the server's; one with its own has only those
--- http_config
gateway_param FROM_HTTP h;
--- config
gateway_param FROM_SERVER s;
gateway_param SHARED server;
location /inherit/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
location /own/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
    gateway_param FROM_LOCATION l;
    gateway_param SHARED location;
}
--- pipelined_requests eval
["GET /inherit/", "GET /own/"]
--- response_body_like eval
[
'\A(?!.*"FROM_HTTP")(?!.*"FROM_LOCATION")(?s:.*)"FROM_SERVER": "s",(?s:.*)"SHARED": "server",',
'\A(?!.*"FROM_HTTP")(?!.*"FROM_SERVER")(?s:.*)"FROM_LOCATION": "l",(?s:.*)"SHARED": "location",',
]



=== TEST 16: http-level gateway_param reach a server and locations without their own
--- http_config
gateway_param FROM_HTTP h;
gateway_param SHARED http;
--- config
location /inherit/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
location /own/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
    gateway_param SHARED location;
}
--- pipelined_requests eval
["GET /inherit/", "GET /own/"]
--- response_body_like eval
[
'"FROM_HTTP": "h",(?s:.*)"SHARED": "http",',
'\A(?!.*"FROM_HTTP")(?s:.*)"SHARED": "location",',
]



=== TEST 17: nested locations inherit the enclosing location's gateway_param
--- config
gateway_param FROM_SERVER s;
location /outer/ {
    gateway_param FROM_OUTER o;
    location /outer/inner/ {
        gateway_app $TEST_NGINX_APPS/libenviron.so;
    }
    location /outer/own/ {
        gateway_app $TEST_NGINX_APPS/libenviron.so;
        gateway_param FROM_INNER i;
    }
}
--- pipelined_requests eval
["GET /outer/inner/", "GET /outer/own/"]
--- response_body_like eval
[
'\A(?!.*"FROM_SERVER")(?!.*"FROM_INNER")(?s:.*)"FROM_OUTER": "o",',
'\A(?!.*"FROM_SERVER")(?!.*"FROM_OUTER")(?s:.*)"FROM_INNER": "i",',
]



=== TEST 18: an unknown third argument fails startup with the file and line
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
    gateway_param A b bogus;
}
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid parameter "bogus" in \S+/nginx\.conf:\d+}



=== TEST 19: an unknown third argument at http level fails startup too
--- http_config
gateway_param A b not_empty;
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
}
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid parameter "not_empty" in \S+/nginx\.conf:\d+}



=== TEST 20: gateway_param with only a name
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
    gateway_param A;
}
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid number of arguments in "gateway_param" directive in \S+/nginx\.conf:\d+}



=== TEST 21: gateway_param with too many arguments
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
    gateway_param A b if_not_empty extra;
}
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid number of arguments in "gateway_param" directive in \S+/nginx\.conf:\d+}



=== TEST 22: a gateway_param value naming an unknown variable fails startup
--- config
location /app/ {
    gateway_app $TEST_NGINX_APPS/libenviron.so;
    gateway_param A $no_such_variable_here;
}
--- must_die
--- error_log eval
qr{\[emerg\] .*unknown "no_such_variable_here" variable}
