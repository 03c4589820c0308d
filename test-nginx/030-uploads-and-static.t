# examples/files under nginx: multipart/form-data uploads read by gateway::multipart from a
# body nginx kept in memory or spilled to its temporary file, saved under their SHA-256 and
# sent back; limits (413), malformed bodies (400) and other content types (415). Static files
# through gateway::StaticFiles, which nginx sends itself: bytes, Content-Type, Range,
# conditional requests, HEAD; traversal attempts sent raw and symbolic links out of the
# directory answer 404, never a file outside it.
use Test::Nginx::Socket 'no_plan';
use Digest::SHA ();
use File::Temp qw(tempdir);

# A directory served as static files, with a secret beside it that must never be sent.
my $site = tempdir(CLEANUP => 1);
mkdir "$site/static" or die;
mkdir "$site/static/css" or die;
sub put {
    my ($path, $content) = @_;
    open my $file, '>:raw', $path or die "$path: $!";
    print $file $content;
    close $file or die;
}
put("$site/static/css/site.css", "body { color: teal }\n");
sub every_byte { return join '', map { chr } 0 .. 255 }
put("$site/static/logo.png", every_byte());
put("$site/secret.txt", "TOP SECRET\n");
symlink "$site/secret.txt", "$site/static/leak.txt" or die;
symlink $site, "$site/static/up" or die;
symlink "$site/static/css/site.css", "$site/static/latest.css" or die;
# 2020-01-02 03:04:05 UTC, for Last-Modified and the ETag.
utime 1577934245, 1577934245, "$site/static/css/site.css" or die;
$ENV{TEST_NGINX_SITE} = $site;

# $n bytes without whitespace (the harness trims request bodies), no stretch repeating.
sub content_of {
    my $n = shift;
    my $text = join '', map { sprintf '%07x;', $_ } 0 .. int($n / 8);
    return substr $text, 0, $n;
}

# A form with a text field and a file.
sub form {
    my ($content) = @_;
    return "--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nholiday\r\n"
        . "--XyZ\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"beach.bin\"\r\n"
        . "Content-Type: application/x-test\r\n\r\n$content\r\n--XyZ--\r\n";
}

# What the app answers for form($content).
sub saved {
    my ($content) = @_;
    my $digest = Digest::SHA::sha256_hex($content);
    return "title = holiday\nphoto beach.bin application/x-test " . length($content)
        . " $digest /uploads/$digest.bin\n";
}

sub path_of {
    my $digest = Digest::SHA::sha256_hex(shift);
    return "/files/uploads/$digest.bin";
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: an upload kept in memory is saved and sent back by nginx
--- config
location /files/ {
    gateway_app $TEST_NGINX_APPS/libfiles.so;
    gateway_app_param static $TEST_NGINX_SITE/static;
    gateway_app_param uploads html/uploads;
}
--- more_headers
Content-Type: multipart/form-data; boundary=XyZ
--- pipelined_requests eval
["POST /files/upload\n" . main::form(main::content_of(3000)),
 "GET " . main::path_of(main::content_of(3000))]
--- error_code eval
[200, 200]
--- response_body eval
[main::saved(main::content_of(3000)), main::content_of(3000)]
--- no_error_log
[error]



=== TEST 2: an upload spilled to nginx's temporary file is read from it, all of it
The digest in the answer is of the bytes the app saved; TEST 1 reads a saved file back.
--- config
location /files/ {
    client_body_buffer_size 16k;
    client_max_body_size 4m;
    gateway_app $TEST_NGINX_APPS/libfiles.so;
    gateway_app_param static $TEST_NGINX_SITE/static;
    gateway_app_param uploads html/uploads;
}
--- more_headers
Content-Type: multipart/form-data; boundary=XyZ
--- request eval
"POST /files/upload\n" . main::form(main::content_of(2_000_000))
--- error_code: 200
--- response_body eval
main::saved(main::content_of(2_000_000))
--- error_log
a client request body is buffered to a temporary file
--- no_error_log
[error]



=== TEST 3: a file over max_file_size is a 413, saved nowhere
--- config
location /files/ {
    gateway_app $TEST_NGINX_APPS/libfiles.so;
    gateway_app_param static $TEST_NGINX_SITE/static;
    gateway_app_param uploads html/uploads;
    gateway_app_param max_file_size 1000;
}
--- more_headers
Content-Type: multipart/form-data; boundary=XyZ
--- pipelined_requests eval
["POST /files/upload\n" . main::form(main::content_of(5000)),
 "GET " . main::path_of(main::content_of(5000))]
--- error_code eval
[413, 404]
--- response_body_like eval
["^field \"photo\" is over the limit of 1000 bytes\n\$", "not found"]



=== TEST 4: a malformed body is a 400, another content type a 415
--- config
location /files/ {
    gateway_app $TEST_NGINX_APPS/libfiles.so;
    gateway_app_param static $TEST_NGINX_SITE/static;
    gateway_app_param uploads html/uploads;
}
--- pipelined_requests eval
["POST /files/upload\n" . substr(main::form("abc"), 0, 100),
 "POST /files/upload\n" . main::form("abc"),
 "POST /files/upload\n" . main::form("abc")]
--- more_headers eval
["Content-Type: multipart/form-data; boundary=XyZ",
 "Content-Type: application/x-www-form-urlencoded",
 "Content-Type: multipart/form-data"]
--- error_code eval
[400, 415, 400]
--- response_body_like eval
["^malformed multipart body", "^the request body must be multipart/form-data", "^malformed multipart body"]



=== TEST 5: static files: their bytes, a type from the extension, Last-Modified, ETag
--- config
location /files/ {
    gateway_app $TEST_NGINX_APPS/libfiles.so;
    gateway_app_param static $TEST_NGINX_SITE/static;
    gateway_app_param uploads html/uploads;
}
--- pipelined_requests eval
["GET /files/static/css/site.css", "GET /files/static/logo.png", "GET /files/static/latest.css"]
--- error_code eval
[200, 200, 200]
--- response_headers eval
["Content-Type: text/css\nContent-Length: 21\nLast-Modified: Thu, 02 Jan 2020 03:04:05 GMT\nETag: \"5e0d5da5-15\"\nAccept-Ranges: bytes",
 "Content-Type: image/png\nContent-Length: 256",
 "Content-Type: text/css\nETag: \"5e0d5da5-15\""]
--- response_body eval
["body { color: teal }\n", main::every_byte(), "body { color: teal }\n"]
--- no_error_log
[error]



=== TEST 6: a Range request is a 206 of those bytes
--- config
location /files/ {
    gateway_app $TEST_NGINX_APPS/libfiles.so;
    gateway_app_param static $TEST_NGINX_SITE/static;
    gateway_app_param uploads html/uploads;
}
--- request
GET /files/static/css/site.css
--- more_headers
Range: bytes=0-3
--- error_code: 206
--- response_headers
Content-Range: bytes 0-3/21
Content-Length: 4
--- response_body chomp
body



=== TEST 7: If-None-Match and If-Modified-Since are answered 304; a stale date gets the file
--- config
location /files/ {
    gateway_app $TEST_NGINX_APPS/libfiles.so;
    gateway_app_param static $TEST_NGINX_SITE/static;
    gateway_app_param uploads html/uploads;
}
--- request eval
["GET /files/static/css/site.css", "GET /files/static/css/site.css", "GET /files/static/css/site.css"]
--- more_headers eval
["If-None-Match: \"5e0d5da5-15\"",
 "If-Modified-Since: Thu, 02 Jan 2020 03:04:05 GMT",
 "If-Modified-Since: Wed, 01 Jan 2020 00:00:00 GMT"]
--- error_code eval
[304, 304, 200]
--- response_body eval
["", "", "body { color: teal }\n"]



=== TEST 8: HEAD sends the headers alone
--- config
location /files/ {
    gateway_app $TEST_NGINX_APPS/libfiles.so;
    gateway_app_param static $TEST_NGINX_SITE/static;
    gateway_app_param uploads html/uploads;
}
--- request
HEAD /files/static/css/site.css
--- error_code: 200
--- response_headers
Content-Type: text/css
Content-Length: 21
--- response_body



=== TEST 9: missing files, directories, and every way out of the directory are 404
nginx decodes and merges the dot segments before the app sees the path: those attempts end
at a route the app does not have, or outside its location; a double-encoded one names a
file that is not there; symbolic links leading out are refused by StaticFiles.
--- config
location /files/ {
    gateway_app $TEST_NGINX_APPS/libfiles.so;
    gateway_app_param static $TEST_NGINX_SITE/static;
    gateway_app_param uploads html/uploads;
}
--- request eval
["GET /files/static/nope.txt",
 "GET /files/static/css",
 "GET /files/static/css/",
 "GET /files/static/..%2fsecret.txt",
 "GET /files/static/..%2f..%2fetc/passwd",
 "GET /files/static/%2e%2e/secret.txt",
 "GET /files/static/%2e%2e%2fsecret.txt",
 "GET /files/static/css/%2e%2e/%2e%2e/secret.txt",
 "GET /files/static/%252e%252e/secret.txt",
 "GET /files/static/%252e%252e%252fsecret.txt",
 "GET /files/static/leak.txt",
 "GET /files/static/up/secret.txt"]
--- error_code eval
[(404) x 12]
--- response_body_unlike eval
[(qr/SECRET|root:|color/) x 12]



=== TEST 10: with merge_slashes off, a path starting with "/" is refused, not made absolute
--- config
merge_slashes off;
location /files/ {
    gateway_app $TEST_NGINX_APPS/libfiles.so;
    gateway_app_param static $TEST_NGINX_SITE/static;
    gateway_app_param uploads html/uploads;
}
--- request eval
["GET /files/static//etc/passwd", "GET /files/static/%2Fetc%2Fpasswd", "GET /files/static//css/site.css"]
--- error_code eval
[404, 404, 404]
--- response_body_unlike eval
[qr/root:/, qr/root:/, qr/color/]



=== TEST 11: NUL in the path never reaches a file
--- config
location /files/ {
    gateway_app $TEST_NGINX_APPS/libfiles.so;
    gateway_app_param static $TEST_NGINX_SITE/static;
    gateway_app_param uploads html/uploads;
}
--- request
GET /files/static/css/site.css%00.png
--- error_code: 400
--- response_body_unlike: color
