# Hostile clients: requests built to crash a worker, confuse the environ, smuggle a second
# request or split a response. Each block says what status nginx or the app answers, and
# after every response the same worker must still be there: nginx runs with a master process
# and one worker, blocks note the worker's pid when they start, and after each response
# /pid must still name it (a crashed worker would come back with another pid, and the
# master would log "exited on signal", which fails any block of this harness).
#
# What the other suites already cover is not repeated here: underscore header spoofing
# (006 TEST 7-10), bodies over client_max_body_size (007 TEST 20-23), a client giving up
# mid-body (007 TEST 24-25), CRLF, LF and NUL in app headers (008 TEST 2-4, 23), a client
# going away mid-stream or stalling (010 TEST 7-8), template names with encoded dot
# segments (013 TEST 6). A template name that is no template (a 404) is
# 018-regressions.t TEST 3.
#
# Sections beyond the harness's own: "uploads_after: N": after each response, the upload
# app has digested N bodies (0: the request never reached an app).
use Test::Nginx::Socket 'no_plan';

use Digest::SHA ();
use IO::Select ();
use Socket qw(PF_INET SOCK_STREAM inet_aton pack_sockaddr_in);
use Time::HiRes ();

master_on();    # the valgrind mode runs one process instead
workers(1);
worker_connections(128);
no_shuffle();

our $Apps = $ENV{TEST_NGINX_APPS};
our $Examples = $ENV{TEST_NGINX_EXAMPLES};

# Every block serves the same apps, besides what its own config adds.
config_preamble(<<"EOC");
        location = /pid {
            return 200 "pid \$pid\\n";
        }
        location /env/ {
            gateway_app $Apps/libenviron.so;
        }
        location /up {
            gateway_app $Apps/libupload.so;
        }
        location /s/ {
            gateway_app $Apps/libstream.so;
        }
        location /hello {
            gateway_app $Apps/libhello.so;
        }
        location /notes/ {
            gateway_app $Apps/libnotes.so;
            gateway_app_param secret_key "a test key of thirty-two bytes..";
            gateway_app_param attachments html/attachments;
            gateway_app_param templates $Examples/notes/templates;
            gateway_app_param database html/notes.sqlite3;
        }
EOC

my $start_pid;
add_block_preprocessor(sub {
    my $block = shift;
    undef $start_pid;
    $block->set_value(config => "\n") unless defined $block->config;
    $block->set_value(init => 'main::note_worker()') unless defined $block->init;
});

# After every response: the same worker, and (with uploads_after) the upload app's count.
add_response_body_check(sub {
    my ($block, $body, $req_idx, $rep, $dry_run) = @_;
    return if $dry_run;
    my $name = $block->name;
    Test::More::is(fetch('/pid'), "pid $start_pid\n",
        "$name - the same worker answers after the response (req $req_idx)");
    if (defined(my $uploads = $block->uploads_after)) {
        Test::More::is(fetch('/up'), "$uploads\n",
            "$name - the upload app digested $uploads bodies (req $req_idx)");
    }
});

sub note_worker {
    my $answer = fetch('/pid') // '';
    $start_pid = $answer =~ /\Apid (\d+)\n\z/ ? $1 : "none (/pid said \"$answer\")";
}

# --- a small client for what the harness's requests cannot do ---------------------

sub connect_nginx {
    socket my $sock, PF_INET, SOCK_STREAM, 0 or die "socket: $!";
    connect $sock, pack_sockaddr_in($Test::Nginx::Util::ServerPortForClient,
                                    inet_aton($Test::Nginx::Util::ServerAddr))
        or die "connect: $!";
    binmode $sock;
    return $sock;
}

# Reads until $want bytes (undef: EOF) or $timeout seconds; returns the data and whether
# the connection was closed.
sub read_some {
    my ($sock, $want, $timeout) = @_;
    my $select = IO::Select->new($sock);
    my $deadline = Time::HiRes::time() + ($timeout // 10);
    my ($data, $eof) = ('', 0);
    while (!defined $want || length $data < $want) {
        my $left = $deadline - Time::HiRes::time();
        last if $left <= 0 || !$select->can_read($left);
        my $n = sysread $sock, my $buf, 65536;
        if (!$n) {
            $eof = 1;
            last;
        }
        $data .= $buf;
    }
    return ($data, $eof);
}

# Sends $raw on a new connection and reads until nginx closes it.
sub exchange {
    my ($raw, $timeout) = @_;
    my $sock = connect_nginx();
    syswrite $sock, $raw;
    my ($data) = read_some($sock, undef, $timeout // 10);
    close $sock;
    return $data;
}

# The body of GET $uri on a new HTTP/1.0 connection.
sub fetch {
    my $uri = shift;
    my $raw = exchange("GET $uri HTTP/1.0\r\nHost: localhost\r\n\r\n");
    return $raw =~ /\r\n\r\n(.*)\z/s ? $1 : undef;
}

# The responses in $data, in order: [status, headers, body] each; chunked bodies decoded.
# @methods: the requests' methods, in order (HEAD responses have no body).
sub responses {
    my ($data, @methods) = @_;
    my @out;
    while ($data =~ s{\AHTTP/1\.[01] (\d{3})[^\r\n]*\r\n((?:[^\r\n]+\r\n)*)\r\n}{}) {
        my ($status, $headers) = ($1, $2);
        my $body = '';
        if (($methods[@out] // '') eq 'HEAD') {
        } elsif ($headers =~ /^Content-Length:\s*(\d+)/mi) {
            $body = substr $data, 0, $1, '';
        } elsif ($headers =~ /^Transfer-Encoding:\s*chunked/mi) {
            while ($data =~ s/\A([0-9a-fA-F]+)\r\n//) {
                my $size = hex $1;
                $body .= substr $data, 0, $size, '';
                $data =~ s/\A\r\n//;
                last if $size == 0;
            }
        } elsif ($status !~ /^(?:204|304)$/) {
            ($body, $data) = ($data, '');
        }
        push @out, [$status, $headers, $body];
    }
    return @out;
}

# --- socket-level blocks (called from "--- init") -----------------------------------

# A client sends a 2 MiB upload's headers and half its body, then goes away: nginx gives
# up on the request without calling the app, and the worker goes on serving.
sub abort_mid_upload {
    note_worker();
    my $size = 2 * 1024 * 1024;
    my $sock = connect_nginx();
    syswrite $sock, "POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: $size\r\n\r\n";
    syswrite $sock, 'x' x ($size / 2);
    Time::HiRes::sleep(0.2);
    close $sock;
    Time::HiRes::sleep(0.2);
    Test::More::is(fetch('/up'), "0\n", 'abort mid-upload: the app was not called');
    Test::More::is(fetch('/pid'), "pid $start_pid\n", 'abort mid-upload: the same worker answers');
    my $digest = exchange("POST /up HTTP/1.0\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello");
    Test::More::like($digest, qr/\r\n\r\n5 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\n\z/,
        'abort mid-upload: the next upload is digested');
}

# A client asks for a stream and closes its connection before reading a byte: the stream
# is dropped all the same, and the worker goes on serving.
sub abort_before_stream {
    note_worker();
    (my $before = fetch('/s/dropped') // '') =~ s/\n\z//;
    for (1 .. 5) {
        my $sock = connect_nginx();
        syswrite $sock, "GET /s/bytes?size=100000000 HTTP/1.1\r\nHost: localhost\r\n\r\n";
        close $sock;
    }
    my ($dropped, $deadline) = ('', Time::HiRes::time() + 5);
    while (Time::HiRes::time() < $deadline) {
        ($dropped = fetch('/s/dropped') // '') =~ s/\n\z//;
        last if $dropped eq $before + 5;
        Time::HiRes::sleep(0.05);
    }
    Test::More::is($dropped, $before + 5, 'abort before reading: all five streams are dropped');
    Test::More::is(fetch('/pid'), "pid $start_pid\n", 'abort before reading: the same worker answers');
}

# Slow-loris: 20 clients send their request headers a byte at a time, one byte a second,
# while another client's requests are each answered within a second.
sub slow_loris {
    note_worker();
    my $request = "GET /hello HTTP/1.1\r\nHost: localhost\r\nX-Slow: " . ('z' x 40) . "\r\n\r\n";
    my @slow = map { connect_nginx() } 1 .. 20;
    my ($sent, $slowest, $served) = (0, 0, 0);
    my $end = Time::HiRes::time() + 4;
    while (Time::HiRes::time() < $end) {
        syswrite $_, substr($request, $sent, 1) for @slow;
        $sent++;
        for (1 .. 3) {
            my $start = Time::HiRes::time();
            my $body = fetch('/hello') // '';
            my $took = Time::HiRes::time() - $start;
            $slowest = $took if $took > $slowest;
            $served++ if $body eq "Hello, World!\n";
        }
        Time::HiRes::sleep(0.9);
    }
    Test::More::diag(sprintf 'slow-loris: %d slow clients sent %d bytes each; %d requests '
        . 'beside them, the slowest answered in %.3f s', scalar @slow, $sent, $served, $slowest);
    Test::More::ok($served >= 12, "slow-loris: the other client was served ($served requests)");
    Test::More::cmp_ok($slowest, '<', 1, 'slow-loris: each within a second');
    # The slow clients still get their answer once they finish.
    syswrite $_, substr($request, $sent) for @slow;
    my $answered = grep {
        my ($data) = read_some($_, length "Hello, World!\n", 5);
        $data =~ /\AHTTP\/1\.1 200 .*\r\n\r\nHello, World!\n/s;
    } @slow;
    Test::More::is($answered, 20, 'slow-loris: the slow clients are answered in the end');
    close $_ for @slow;
    Test::More::is(fetch('/pid'), "pid $start_pid\n", 'slow-loris: the same worker answers');
}

# Ten requests pipelined on one connection, to several apps, with bodies and a stream:
# ten responses, in order, each the right one.
sub pipelined {
    note_worker();
    my $smuggled = "GET /s/panic HTTP/1.1\r\nHost: x\r\n\r\n";
    my @requests = (
        ["GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", 200, "Hello, World!\n"],
        ["POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 200,
            "5 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\n"],
        ["GET /s/lines?n=3 HTTP/1.1\r\nHost: x\r\n\r\n", 200, "line 1\nline 2\nline 3\n"],
        ["GET /env/x?key=PATH_INFO HTTP/1.1\r\nHost: x\r\n\r\n", 200, "/x"],
        # A body that looks like a request is a body: digested, never run.
        ["POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: " . length($smuggled) . "\r\n\r\n$smuggled",
            200, length($smuggled) . " " . Digest::SHA::sha256_hex($smuggled) . "\n"],
        ["POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 200,
            "3 ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n"],
        ["HEAD /s/bytes?size=1000 HTTP/1.1\r\nHost: x\r\n\r\n", 200, ''],
        ["GET /up HTTP/1.1\r\nHost: x\r\n\r\n", 200, "3\n"],
        ["GET /pid HTTP/1.1\r\nHost: x\r\n\r\n", 200, "pid $start_pid\n"],
        # A 500 ends the connection (nginx turns keep-alive off for it).
        ["GET /s/panic HTTP/1.1\r\nHost: x\r\n\r\n", 500, qr/500 Internal Server Error/],
    );
    my $raw = join '', map { $_->[0] } @requests;
    my @got = responses(exchange($raw), map { $_->[0] =~ /^(\S+)/ } @requests);
    Test::More::is(scalar @got, scalar @requests, 'pipelined: one response per request');
    for my $i (0 .. $#requests) {
        my ($status, $body) = @{ $requests[$i] }[1, 2];
        (my $line = $requests[$i][0]) =~ s/\r\n.*//s;
        Test::More::is($got[$i][0], $status, "pipelined: $line: status $status");
        if (ref $body) {
            Test::More::like($got[$i][2], $body, "pipelined: $line: body");
        } else {
            Test::More::is($got[$i][2], $body, "pipelined: $line: body");
        }
    }
    Test::More::is(fetch('/pid'), "pid $start_pid\n", 'pipelined: the same worker answers');
}

run_tests();

__DATA__

=== TEST 1: a header line over large_client_header_buffers: 400, the app is not called
--- raw_request eval
"GET /env/?key=HTTP_X_LONG HTTP/1.1\r\nHost: localhost\r\nX-Long: " . ("a" x 9000) . "\r\nConnection: close\r\n\r\n"
--- error_code: 400
--- response_body_like: Request Header Or Cookie Too Large
--- error_log
client sent too long header line



=== TEST 2: a request line over large_client_header_buffers: 414
--- raw_request eval
"GET /env/" . ("a" x 9000) . " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
--- error_code: 414
--- error_log
client sent too long URI



=== TEST 3: more header bytes than all the header buffers hold: 400
--- raw_request eval
"GET /env/ HTTP/1.1\r\nHost: localhost\r\n" . CORE::join("", map { "X-H$_: " . ("b" x 7000) . "\r\n" } 1 .. 5) . "Connection: close\r\n\r\n"
--- error_code: 400
--- response_body_like: Request Header Or Cookie Too Large



=== TEST 4: a long header within the limits reaches the app whole
--- raw_request eval
"GET /env/?key=HTTP_X_LONG HTTP/1.1\r\nHost: localhost\r\nX-Long: " . ("a" x 7000) . "\r\nConnection: close\r\n\r\n"
--- response_body eval
"a" x 7000



=== TEST 5: a NUL in a header value: 400, nothing reaches the app
--- raw_request eval
"GET /env/?key=HTTP_X_NUL HTTP/1.1\r\nHost: localhost\r\nX-Nul: a\0b\r\nConnection: close\r\n\r\n"
--- error_code: 400
--- error_log
client sent invalid header line



=== TEST 6: a NUL in a header name: 400
--- raw_request eval
"GET /env/ HTTP/1.1\r\nHost: localhost\r\nX-N\0ul: a\r\nConnection: close\r\n\r\n"
--- error_code: 400



=== TEST 7: a bare CR inside a header value: 400, never a second header
--- raw_request eval
"GET /env/?key=HTTP_X_SPLIT HTTP/1.1\r\nHost: localhost\r\nX-Split: a\rX-Injected: b\r\nConnection: close\r\n\r\n"
--- error_code: 400



=== TEST 8: other control characters in a header value reach the app as raw bytes
--- raw_request eval
"GET /env/?key=HTTP_X_CTL HTTP/1.1\r\nHost: localhost\r\nX-Ctl: a\x01b\x1bc\x7fd\te\r\nConnection: close\r\n\r\n"
--- response_body eval
"a\x01b\x1bc\x7fd\te"



=== TEST 9: a space before the colon of a header: 400
--- raw_request eval
"GET /env/?key=HTTP_X_BAD HTTP/1.1\r\nHost: localhost\r\nX-Bad : a\r\nConnection: close\r\n\r\n"
--- error_code: 400
--- error_log
client sent invalid header line



=== TEST 10: a header name with a character outside the token set is ignored, not passed on
--- raw_request eval
"GET /env/?key=HTTP_X\@BAD HTTP/1.1\r\nHost: localhost\r\nX\@Bad: a\r\nConnection: close\r\n\r\n"
--- error_code: 404
--- response_body
no such key
--- error_log
client sent invalid header line



=== TEST 11: a NUL byte in the request line: 400
--- raw_request eval
"GET /env/a\0b HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
--- error_code: 400



=== TEST 12: a control character in the request line: 400
--- raw_request eval
"GET /env/a\x01b HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
--- error_code: 400



=== TEST 13: %00 in the path: 400, never a NUL in PATH_INFO
--- request
GET /env/a%00b?key=PATH_INFO
--- error_code: 400



=== TEST 14: percent-encoded control characters are decoded into PATH_INFO, raw
--- request
GET /env/%01%1b%7f?key=PATH_INFO
--- response_body eval
"/\x01\x1b\x7f"



=== TEST 15: invalid UTF-8 and overlong encodings stay bytes: an overlong "." is no dot
--- request
GET /env/%c0%ae%c0%ae/%e0%80%af/%ff%fe?key=PATH_INFO
--- response_body eval
"/\xc0\xae\xc0\xae/\xe0\x80\xaf/\xff\xfe"



=== TEST 16: overlong dots sent raw, not encoded, are no dots either
--- raw_request eval
"GET /env/\xc0\xae\xc0\xae/x?key=PATH_INFO HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
--- response_body eval
"/\xc0\xae\xc0\xae/x"



=== TEST 17: ".." that climbs out of the mount point leaves the app: nginx serves the rest
--- config
location ~ ^/(secret|etc/passwd)$ {
    return 200 "outside the app: $uri\n";
}
--- pipelined_requests eval
["GET /env/../secret", "GET /env/%2e%2E/etc/passwd", "GET /env/..%2fsecret", "GET /env/a/../../secret"]
--- response_body eval
["outside the app: /secret\n", "outside the app: /etc/passwd\n", "outside the app: /secret\n", "outside the app: /secret\n"]



=== TEST 18: ".." that stays inside the mount point: PATH_INFO has no dot segment left
--- pipelined_requests eval
["GET /env/a/b/../c?key=PATH_INFO", "GET /env/a/%2e%2e/c?key=PATH_INFO", "GET /env/a/./b/.?key=PATH_INFO", "GET /env/a/..%2F..%2Fenv%2Fc?key=PATH_INFO"]
--- response_body eval
["/a/c", "/c", "/a/b/", "/c"]



=== TEST 19: ".." above the root: 400
--- raw_request eval
"GET /../../etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
--- error_code: 400



=== TEST 20: "//" is merged before the split: SCRIPT_NAME and PATH_INFO as for one "/"
--- pipelined_requests eval
["GET //env//a//b?key=PATH_INFO", "GET //env//a?key=SCRIPT_NAME", "GET /env/%2F%2Fa?key=PATH_INFO"]
--- response_body eval
["/a/b", "/env", "/a"]



=== TEST 21: with merge_slashes off, "//" stays in PATH_INFO; the mount point still holds
--- config
merge_slashes off;
--- pipelined_requests eval
["GET /env//a//b?key=PATH_INFO", "GET /env//a?key=SCRIPT_NAME"]
--- response_body eval
["//a//b", "/env"]



=== TEST 22: an app echoing attacker text into a header: refused (400), never split
Whatever the client puts in the value (CR, LF, CRLF with a header after it, NUL, DEL) or
the name, the response has no header the client chose.
--- pipelined_requests eval
["GET /s/header?name=X-Echo&value=a%0d%0aSet-Cookie:%20evil=1",
 "GET /s/header?name=X-Echo&value=a%0aSet-Cookie:%20evil=1",
 "GET /s/header?name=X-Echo&value=a%0dSet-Cookie:%20evil=1",
 "GET /s/header?name=X-Echo&value=a%00b",
 "GET /s/header?name=X-Echo&value=a%7fb",
 "GET /s/header?name=Set-Cookie:%20evil=1%0d%0aX-Echo&value=a",
 "GET /s/header?name=X-Echo&value=%0d%0a%0d%0a<script>alert(1)</script>"]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400]
--- raw_response_headers_unlike eval
[qr/evil|X-Echo|script/i, qr/evil|X-Echo|script/i, qr/evil|X-Echo|script/i, qr/X-Echo/i, qr/X-Echo/i, qr/evil|X-Echo/i, qr/X-Echo|script/i]



=== TEST 23: echoed text that is a valid header value is sent as it is, in one header
--- request
GET /s/header?name=X-Echo&value=%e2%98%83%20tab%09and%20colon:%20x
--- response_headers
X-Echo: ☃ tab	and colon: x
--- response_body
echoed



=== TEST 24: template names with "../", absolute paths and backslashes never leave the directory
--- config
merge_slashes off;
--- pipelined_requests eval
["GET /notes/pages/about.html",
 "GET /notes/pages//etc/passwd",
 "GET /notes/pages/%2Fetc%2Fpasswd",
 "GET /notes/pages/..%5c..%5cCargo.toml",
 "GET /notes/pages/a/%2e%2e%2f%2e%2e%2f%2e%2e%2fCargo.toml",
 "GET /notes/pages/.%2e/base.html",
 "GET /notes/pages/about.html%00"]
--- error_code eval
[200, 404, 404, 404, 404, 404, 400]



=== TEST 25: Content-Length and Transfer-Encoding together: refused, nothing smuggled
--- raw_request eval
"POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /s/panic HTTP/1.1\r\nHost: localhost\r\n\r\n"
--- error_code: 400
--- uploads_after: 0



=== TEST 26: two Content-Length headers: 400
--- raw_request eval
"POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nContent-Length: 30\r\nConnection: close\r\n\r\nabc"
--- error_code: 400
--- uploads_after: 0
--- error_log
client sent duplicate header line



=== TEST 27: a negative Content-Length: 400
--- raw_request eval
"POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\nConnection: close\r\n\r\nabc"
--- error_code: 400
--- uploads_after: 0



=== TEST 28: a Content-Length past 64 bits: 400, never a wrapped small length
--- raw_request eval
"POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 18446744073709551619\r\nConnection: close\r\n\r\nabc"
--- error_code: 400
--- uploads_after: 0



=== TEST 29: a Content-Length list ("3, 3"): 400
--- raw_request eval
"POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3, 3\r\nConnection: close\r\n\r\nabc"
--- error_code: 400
--- uploads_after: 0



=== TEST 30: a Transfer-Encoding other than chunked: 501
--- raw_request eval
"POST /up HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
--- error_code: 501
--- uploads_after: 0



=== TEST 31: a chunk size that is not hex: 400
--- raw_request eval
"POST /up HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
--- error_code: 400
--- uploads_after: 0
--- error_log
client sent invalid chunked body



=== TEST 32: a negative chunk size: 400
--- raw_request eval
"POST /up HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n-3\r\nabc\r\n0\r\n\r\n"
--- error_code: 400
--- uploads_after: 0



=== TEST 33: a chunk size that overflows 64 bits: 400, never a wrapped small size
--- raw_request eval
"POST /up HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n10000000000000003\r\nabc\r\n0\r\n\r\n"
--- error_code: 400
--- uploads_after: 0



=== TEST 34: a chunk longer than its size says: 400
--- raw_request eval
"POST /up HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n"
--- error_code: 400
--- uploads_after: 0



=== TEST 35: chunk extensions and trailers are accepted and not passed on as body
--- raw_request eval
"POST /up HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3;name=value\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"
--- response_body
3 ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
--- uploads_after: 1



=== TEST 36: a client that aborts mid-upload of a body bound for a temporary file
--- init
main::abort_mid_upload();
--- request
GET /up
--- response_body
1



=== TEST 37: clients that close before reading their stream: every stream is dropped
--- init
main::abort_before_stream();
--- request
GET /hello
--- response_body
Hello, World!



=== TEST 38: slow-loris clients do not delay other requests
--- init
main::slow_loris();
--- request
GET /hello
--- response_body
Hello, World!
--- timeout: 30



=== TEST 39: pipelined requests on one connection: each answered, in order
--- init
main::pipelined();
--- request
GET /hello
--- response_body
Hello, World!
