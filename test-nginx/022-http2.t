# HTTP/2 over TLS (ALPN h2). Over HTTP/2 a request reaches the module differently inside
# nginx: its body comes through the h2 stream's own buffers (and nginx's flow control),
# and the module's writes become DATA frames of the h2 connection, held back by the
# client's windows. This suite runs the body, stream, server-sent event, offload and
# deferred paths that the HTTP/1 suites check (007, 009, 016, 020, 021) over HTTP/2 with
# TLS: with curl, as an ordinary client, and with a frame-level client
# (Test::Gateway::H2) for a window opened at the test's pace, RST_STREAM on one stream
# while the others go on, and a connection dropped mid-response.
#
# openresty's Test::Nginx has a `--- http2` section, but it speaks cleartext HTTP/2 (h2c,
# with prior knowledge), not TLS with ALPN, and one request at a time; so this is a plain
# Test::More script on Test::Gateway::Server, like 016-offload.t: it writes its own
# nginx.conf (listening with TLS and HTTP/2 on 127.0.0.1, a certificate made at test time)
# and always stops nginx. The listen syntax follows the nginx: `http2 on` from 1.25.1 (Debian
# 1.22 knows only `listen ... http2`, which 1.25.1 deprecated with a [warn]).
#
# Timing bounds are loose on purpose (CI has two slow cores) and scale with
# TEST_NGINX_TIMEOUT (scripts/test-valgrind sets 60).
use strict;
use warnings;
use Test::More;
use Digest::SHA ();
use File::Temp qw(tempdir);
use JSON::PP ();
use List::Util qw(max min sum);
use Time::HiRes qw(time);
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Gateway::Process qw(write_file);
use Test::Gateway::Server qw(
    apps_dir nginx_binary nginx_version patience start_nginx worker_pids log_lines bad_log_lines
    finish wait_until
);
use Test::Gateway::H2 qw(tls_h2 curl_h2 curl_parallel curl_stream);

my $apps = apps_dir() or plan skip_all => 'TEST_NGINX_APPS is not set';
{
    my $curl = `curl -V 2>/dev/null` // '';
    plan skip_all => 'curl without HTTP2' unless $curl =~ /^Features:.*\bHTTP2\b/m;
    my $nginx = nginx_binary();
    my $built = `"$nginx" -V 2>&1` // '';
    plan skip_all => 'nginx without the http_v2 and http_ssl modules'
        unless $built =~ /--with-http_v2_module/ && $built =~ /--with-http_ssl_module/;
}

my $k = patience();    # 1, or 6 under valgrind
my $json = JSON::PP->new;
my $scratch = tempdir('gateway-022-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my %tls = tls_h2($scratch);

my $stream = "$apps/libstream.so";
my $deferred = "$apps/libdeferred.so";
my $upload = "$apps/libupload.so";

my %conf = (
    name => 'gateway-022',
    listen => $tls{listen},
    main => 'thread_pool gw threads=4;',
    http => '    gateway_status_zone gateway 1m;',
    server => <<"CONF",
$tls{tls}
        # Bodies up to 8 MiB; those over 16 KiB go to a temporary file.
        client_max_body_size 8m;
        client_body_buffer_size 16k;
        location /s/ {
            gateway_app $stream;
        }
        location /p/ {
            gateway_app $stream;
            gateway_thread_pool gw;
        }
        location /t/ {
            gateway_app $stream;
            gateway_thread_pool gw;
            gateway_timeout @{[int(300 * $k)]}ms;
        }
        location /u/ {
            gateway_app $upload;
        }
        location /pu/ {
            gateway_app $upload;
            gateway_thread_pool gw;
        }
        location /e/ {
            gateway_app $apps/libenviron.so;
        }
        location /d/ {
            gateway_app $deferred;
        }
        location /dp/ {
            gateway_app $deferred;
            gateway_thread_pool gw;
        }
        location = /status {
            gateway_status;
        }
        location = /plain {
            return 200 "plain\\n";
        }
CONF
);

# The panics sections cause on purpose (the module's [error] for each), which finish would
# otherwise count as crashes.
my $expected_panics = qr/\[error\] .*gateway: app "stream" (?:failed: handler panicked at |stream failed after \d+ bytes, the response is cut short: stream panicked at )/;

# --- what the apps answer ------------------------------------------------------------------

# The first $n bytes of libstream's /bytes: "abc..z" over and over, restarting with every
# 64 KiB chunk.
sub pattern {
    my $n = shift;
    my $chunk = join '', map { chr(97 + $_ % 26) } 0 .. 65535;
    return substr $chunk x (int($n / 65536) + 1), 0, $n;
}

# The body the deferred fixture streams: chunk k is `(k + i) % 26` letters from "a".
sub deferred_body {
    my ($chunks, $size) = @_;
    my $cycle = join('', 'a' .. 'z') x (int($size / 26) + 2);
    return join '', map { substr($cycle, $_ % 26, $size) } 0 .. $chunks - 1;
}

# $n bytes in which no stretch repeats (the SHA-1s of 0, 1, 2...), so a part read twice,
# skipped or out of order changes the digest.
sub body_of {
    my $n = shift;
    return substr join('', map { Digest::SHA::sha1_hex($_) } 0 .. int($n / 40)), 0, $n;
}

# What libupload answers for $body.
sub digest_line {
    my $body = shift;
    return length($body) . ' ' . Digest::SHA::sha256_hex($body) . "\n";
}

sub first_difference {
    my ($got, $want) = @_;
    my $i = 0;
    $i++ while $i < length $got && $i < length $want && substr($got, $i, 1) eq substr($want, $i, 1);
    return "first difference at byte $i of " . length($got) . ' (expected ' . length($want) . ')';
}

sub describe {
    my $c = shift;
    my $body = substr $c->{body} // '', 0, 60;
    $body =~ s/\n/\\n/g;
    return sprintf '%s: HTTP/%s %s "%s" (%d bytes), curl exit %s%s', $c->{uri}, $c->{version}, $c->{status},
        $body, length($c->{body} // ''), $c->{exit}, $c->{error} ? " ($c->{error})" : '';
}

# --- the worker's state --------------------------------------------------------------------

sub status_doc {
    my $server = shift;
    my $c = curl_h2($server, '/status');
    return ($c->{status} eq '200' && eval { $json->decode($c->{body}) }) || {};
}

# No call in flight, nothing running or queued on the pool.
sub idle {
    my $doc = status_doc(shift);
    my $pool = $doc->{thread_pools}{gw} // {};
    my @busy = grep { $_->{in_flight} } values %{ $doc->{apps} // {} };
    return %$doc && !@busy && !($pool->{running} // 0) && !($pool->{queued} // 0);
}

# How many streams libstream has dropped in this worker (ended or abandoned).
sub dropped {
    my $c = curl_h2(shift, '/s/dropped');
    return $c->{body} =~ /^(\d+)$/ ? $1 : -1;
}

# The deferred fixture's counters: responded, released, pending.
sub deferred_stats {
    my $c = curl_h2(shift, '/d/stats');
    return $c->{body} =~ /^responded=(\d+) released=(\d+) pending=(-?\d+)$/ ? ($1, $2, $3) : ();
}

# How many bodies libupload has digested in this worker.
sub digested {
    my $c = curl_h2(shift, '/u/');
    return $c->{body} =~ /^(\d+)$/ ? $1 : -1;
}

# Starts nginx with the suite's config; returns it and what aftermath compares with: its
# worker, libstream's dropped streams and libupload's digested bodies.
sub start_counted {
    my $server = start_nginx(%conf);
    my ($worker) = worker_pids($server);
    return ($server, { worker => $worker, dropped => dropped($server), digested => digested($server) });
}

# What every section that leaves calls, streams or uploads behind checks after them: the
# calls all finished, libstream dropped $streams more streams, the deferred app's
# responses released and none pending, no upload cut short reached libupload, the same
# worker, no crash, [alert] or panic, and requests still served.
sub aftermath {
    my ($server, $before, $what, $streams) = @_;
    ok wait_until(15 * $k, sub { idle($server) }), "$what: the worker's calls all finished"
        or diag explain status_doc($server);
    my $now;
    ok wait_until(5 * $k, sub { ($now = dropped($server)) == $before->{dropped} + $streams }),
        "$what: libstream dropped $streams more streams (now $now, was $before->{dropped})";
    my @stats;
    ok wait_until(5 * $k, sub { @stats = deferred_stats($server); @stats && $stats[0] == $stats[1] && !$stats[2] }),
        "$what: the deferred app's responses all released, none pending (responded=$stats[0] "
        . "released=$stats[1] pending=$stats[2])";
    is digested($server), $before->{digested}, "$what: libupload digested no body cut short";
    is_deeply [worker_pids($server)], [$before->{worker}], "$what: the same worker";
    is_deeply [bad_log_lines($server, $expected_panics)], [], "$what: no crash, [alert], panic or request-count error";
    my @served = map { my $c = curl_h2($server, $_); "$c->{version} $c->{status} $c->{body}" }
        '/plain', '/p/sleep?ms=0', '/d/now';
    is_deeply \@served, ["2 200 plain\n", "2 200 slept 0 ms on the thread_pool\n", "2 200 now\n"],
        "$what: the worker serves on, over HTTP/2";
}

# Waits until each of the streams @ids has used its window of $window bytes, and a moment
# more; returns how many bytes each has had (its window, if nginx stopped there).
sub held_at {
    my ($h2, $window, @ids) = @_;
    $h2->pump(5 * $k, sub { !grep { $h2->stream($_)->{bytes} < $window } @ids });
    $h2->pump(0.2 * $k);
    return [map { $h2->stream($_)->{bytes} } @ids];
}

# --- the sections --------------------------------------------------------------------------

subtest 'TLS with ALPN h2, and the environ of an HTTP/2 request' => sub {
    my $server = start_nginx(%conf);
    my $c = curl_h2($server, '/e/?x=1');
    note describe($c);
    is $c->{version}, '2', 'curl negotiated HTTP/2 (ALPN h2)';
    is $c->{status_line}, 'HTTP/2 200 ', '... and nginx answered on it';
    my $env = eval { $json->decode($c->{body}) } // {};
    is $env->{SERVER_PROTOCOL}, 'HTTP/2.0', 'SERVER_PROTOCOL is HTTP/2.0';
    is $env->{HTTPS}, 'on', 'HTTPS is on';
    is $env->{REQUEST_SCHEME}, 'https', 'REQUEST_SCHEME is https';
    is $env->{'gateway.url_scheme'}, 'https', 'gateway.url_scheme is https';
    is "$env->{REQUEST_METHOD} $env->{REQUEST_URI} $env->{QUERY_STRING}", 'GET /e/?x=1 x=1',
        'the method, URI and query from the pseudo-headers';
    like $env->{HTTP_USER_AGENT} // '', qr{^curl/}, 'a header, lower-case on the wire, as HTTP_USER_AGENT';
    ok !exists $env->{CONTENT_LENGTH}, 'a GET without a body: no CONTENT_LENGTH';
    my $h2 = eval { Test::Gateway::H2::Client->new($server) };
    ok $h2, 'openssl s_client with ALPN h2 gets nginx\'s SETTINGS: the frame-level client speaks HTTP/2'
        or diag $@;
    my $id = $h2->request('GET', '/e/?key=SERVER_PROTOCOL');
    $h2->pump(5 * $k, sub { $h2->ended($id) });
    is join(' ', @{ $h2->stream($id) }{qw(status body)}), '200 HTTP/2.0', '... and its request is answered';
    $h2->close_connection;
    my @version = nginx_version();
    is_deeply [log_lines($server, qr/deprecated/)], [],
        "the listen syntax for nginx @{[join '.', @version]} ($tls{listen}): no deprecation warning";
    finish($server, 'environ');
};

subtest 'streams: chunked bodies become DATA frames, intact, on the event loop and a pool' => sub {
    my $server = start_nginx(%conf);
    my $before = dropped($server);
    my $streams = 0;
    for my $prefix ('/s', '/p') {
        my $c = curl_h2($server, "$prefix/lines?n=3");
        is "$c->{version} $c->{status} $c->{body}", "2 200 line 1\nline 2\nline 3\n", "$prefix/lines: three lines";
        ok !exists $c->{headers}{'content-length'}, "$prefix/lines: no content-length (the stream's end ends it)";
        my $size = 3 * 1048576 + 123;
        $c = curl_h2($server, "$prefix/bytes?size=$size");
        is "$c->{status} $c->{exit}", '200 0', "$prefix/bytes?size=$size: 200, and the stream ended cleanly";
        is length $c->{body}, $size, "$prefix/bytes?size=$size: every byte";
        ok $c->{body} eq pattern($size), "$prefix/bytes?size=$size: in order"
            or diag first_difference($c->{body}, pattern($size));
        $c = curl_h2($server, "$prefix/bytes?size=1048576&declare=1");
        is $c->{headers}{'content-length'}, 1048576, "$prefix/bytes with a declared length: its content-length";
        ok $c->{body} eq pattern(1048576), '... and the body, intact';
        $c = curl_h2($server, "$prefix/bytes?size=0");
        is "$c->{status} $c->{exit} [$c->{body}]", '200 0 []', "$prefix/bytes?size=0: an empty stream";
        $streams += 4;
    }
    # HEAD: the frame-level client sees whether any DATA comes.
    my $h2 = Test::Gateway::H2::Client->new($server);
    for my $prefix ('/s', '/p') {
        my $id = $h2->request('HEAD', "$prefix/lines?n=3");
        $h2->pump(5 * $k, sub { $h2->ended($id) });
        my $s = $h2->stream($id);
        is "$s->{status} $s->{bytes} " . ($s->{reset} // 'ended'), '200 0 ended',
            "$prefix/lines, HEAD: the headers, END_STREAM, no DATA";
        $streams++;
    }
    $h2->close_connection;
    my $now;
    ok wait_until(5 * $k, sub { ($now = dropped($server)) == $before + $streams }),
        "every stream was dropped once it ended ($streams more: now $now, was $before)";
    finish($server, 'streams');
};

subtest 'server-sent events arrive as they are produced' => sub {
    my $server = start_nginx(%conf);
    my $c = curl_h2($server, '/s/events?n=1');
    is $c->{headers}{'content-type'}, 'text/event-stream', 'the event-stream content-type';
    my $gap = 0.3 * $k;
    for my $prefix ('/s', '/p') {
        my ($body, $at) = curl_stream($server, "$prefix/events?n=3&interval_ms=" . int(1000 * $gap),
            'event 1', 'event 2', 'event 3');
        is $body, "data: event 1\n\ndata: event 2\n\ndata: event 3\n\n", "$prefix/events: the three events";
        note sprintf '%s: events at %s s', $prefix, join ', ', map { sprintf '%.3f', $at->{"event $_"} // -1 } 1 .. 3;
        cmp_ok(($at->{'event 3'} // 0) - ($at->{'event 1'} // 99), '>=', 1.5 * $gap,
            "$prefix/events: the first event came at least " . 1.5 * $gap . ' s before the third, as produced');
        cmp_ok(($at->{'event 2'} // 0) - ($at->{'event 1'} // 99), '>=', 0.5 * $gap,
            "$prefix/events: ... and the second apart from both");
    }
    finish($server, 'events');
};

subtest 'a stream that fails or panics midway: the chunks before it, then RST_STREAM' => sub {
    my $server = start_nginx(%conf);
    for my $prefix ('/s', '/p') {
        for my $how ('fail', 'panic') {
            my $c = curl_h2($server, "$prefix/$how?after=2");
            note describe($c);
            is "$c->{status} $c->{body}", "200 chunk 0\nchunk 1\n", "$prefix/$how?after=2: the two chunks";
            is $c->{exit}, 92, "$prefix/$how?after=2: curl says the stream was not closed cleanly (exit 92)";
            like $c->{error}, qr/INTERNAL_ERROR/, '... reset with INTERNAL_ERROR, not ended as if complete';
        }
        my $c = curl_h2($server, "$prefix/panic");
        is $c->{status}, 500, "$prefix/panic, before any answer: 500";
    }
    my @cut = log_lines($server, qr/\[error\] .*gateway: app "stream" stream failed after 16 bytes, the response is cut short/);
    is scalar @cut, 4, 'each cut is logged' or diag @cut;
    # On one connection, the streams that break do not take the others with them.
    my @c = curl_parallel($server, '/s/fail?after=2', '/s/lines?n=3', '/p/panic?after=2', '/p/lines?n=3', '/plain');
    note describe($_) for @c;
    is sum(map { $_->{connects} // 0 } @c), 1, 'five requests multiplexed on one connection';
    is_deeply [map { $_->{exit} } @c], [92, 0, 92, 0, 0], 'the two broken streams are reset, the rest complete';
    is_deeply [map { $_->{body} } @c[1, 3, 4]], ["line 1\nline 2\nline 3\n", "line 1\nline 2\nline 3\n", "plain\n"],
        '... with their bodies';
    finish($server, 'broken streams', ok => $expected_panics);
};

subtest 'offloaded calls multiplexed on one connection, and a deadline' => sub {
    my $server = start_nginx(%conf);
    my @c = curl_parallel($server, (map { '/p/sleep?ms=' . int(1000 * $k) } 1 .. 4), '/s/sleep?ms=0');
    note describe($_) for @c;
    my $quick = pop @c;
    is sum(map { $_->{connects} // 0 } @c, $quick), 1, 'five requests on one connection';
    my $slept = 'slept ' . int(1000 * $k) . " ms on the thread_pool\n";
    is_deeply [map { "$_->{version} $_->{status} $_->{body}" } @c], [("2 200 $slept") x 4],
        'four slow calls answered from the pool, over HTTP/2';
    cmp_ok max(map { $_->{time} // 99 } @c), '<', 3 * $k, 'all four within 3 s: they ran in parallel (one after another, 4 s)';
    is "$quick->{status} $quick->{body}", "200 slept 0 ms on the event_loop\n", 'a call on the event loop meanwhile';
    cmp_ok $quick->{time} // 99, '<', min(map { $_->{time} // 0 } @c), '... answered before any slow one';

    my $c = curl_h2($server, '/t/sleep?ms=' . int(1000 * $k));
    note describe($c);
    is $c->{status}, 504, 'a call past gateway_timeout: 504';
    like $c->{body}, qr{<h1>504 Gateway Time-out</h1>}, '... with the 504 page';
    cmp_ok $c->{time} // 99, '<', 0.9 * $k, '... without waiting for the call';
    ok wait_until(5 * $k, sub { idle($server) }), 'the detached call finished';
    is scalar(log_lines($server, qr/call exceeded gateway_timeout/)), 1, 'the timeout is logged once';
    finish($server, 'offload');
};

subtest 'deferred calls and STREAM_PENDING streams' => sub {
    my $server = start_nginx(%conf);
    for my $prefix ('/d', '/dp') {
        my $c = curl_h2($server, "$prefix/defer?ms=50");
        is "$c->{version} $c->{status} $c->{body}", "2 200 deferred 50 ms\n", "$prefix/defer?ms=50: answered later";
        cmp_ok $c->{time} // 0, '>=', 0.05, '... after its 50 ms';
        $c = curl_h2($server, "$prefix/stream?chunks=50&size=1000&wake_ms=1");
        is "$c->{status} $c->{exit}", '200 0', "$prefix/stream: 200, ended cleanly";
        ok $c->{body} eq deferred_body(50, 1000), "$prefix/stream: the 50 chunks in order"
            or diag first_difference($c->{body}, deferred_body(50, 1000));
    }
    # Streams woken from the app's thread, ten at once on one connection.
    my @c = curl_parallel($server, map { ($_ % 2 ? '/d' : '/dp') . '/stream?chunks=50&size=1000&wake_ms=1' } 1 .. 10);
    is sum(map { $_->{connects} // 0 } @c), 1, 'ten streams on one connection';
    my @wrong = grep { $_->{status} ne '200' || $_->{body} ne deferred_body(50, 1000) } @c;
    is scalar @wrong, 0, 'each complete and in order' or diag join "\n", map { describe($_) } @wrong;
    my @stats;
    ok wait_until(3 * $k, sub { @stats = deferred_stats($server); @stats && $stats[0] == $stats[1] && !$stats[2] }),
        "every response released once, none pending (@stats)";
    finish($server, 'deferred');
};

subtest 'request bodies: in memory and spilled to a file, with and without Content-Length' => sub {
    my $server = start_nginx(%conf);
    my %bodies = (small => 'hello, upload', empty => '', large => body_of(2 * 1048576));
    write_file("$scratch/$_", $bodies{$_}) for keys %bodies;
    for my $prefix ('/u', '/pu') {
        for my $name ('small', 'empty', 'large') {
            my $c = curl_h2($server, "$prefix/", data => "$scratch/$name");
            is "$c->{version} $c->{status} $c->{body}", '2 200 ' . digest_line($bodies{$name}),
                "$prefix/: the $name body with its content-length, digested";
        }
        for my $name ('small', 'large') {
            my $c = curl_h2($server, "$prefix/", stdin => "$scratch/$name");
            is "$c->{status} $c->{body}", '200 ' . digest_line($bodies{$name}),
                "$prefix/: the $name body streamed without a content-length, digested";
        }
    }
    my $c = curl_h2($server, '/e/?key=CONTENT_LENGTH', data => "$scratch/large");
    is $c->{body}, 2 * 1048576, 'CONTENT_LENGTH of the large body';
    $c = curl_h2($server, '/e/?key=CONTENT_LENGTH', stdin => "$scratch/small");
    is $c->{body}, length $bodies{small}, 'CONTENT_LENGTH of a body without a content-length: its length';
    $c = curl_h2($server, '/e/?key=REQUEST_URI', stdin => "$scratch/small");
    is $c->{body}, '/e/?key=REQUEST_URI', '... (sent to the URI asked)';
    # Two large bodies per location with and without a length, and the environ's.
    my @spilled = log_lines($server, qr/\[warn\] .*a client request body is buffered to a temporary file/);
    is scalar @spilled, 5, 'the large bodies were spilled to temporary files' or diag @spilled;
    finish($server, 'request bodies');
};

subtest 'request bodies in DATA frames, paced by nginx\'s windows and the client\'s pauses' => sub {
    my $server = start_nginx(%conf);
    my $h2 = Test::Gateway::H2::Client->new($server);
    my $large = body_of(1048576);
    my @cases = (
        ['/u/', $large, 'a 1 MiB body in 16 KiB frames, with its content-length'],
        ['/pu/', $large, 'a 1 MiB body without a content-length, on the pool', length => 0],
        ['/u/', body_of(60000), 'a body in 6 frames 0.1 s apart', piece => 10000, pause => 0.1 * $k],
        ['/pu/', body_of(3000), 'a 3000-byte body in frames of 1000 bytes, on the pool', piece => 1000],
    );
    for my $case (@cases) {
        my ($path, $body, $what, %o) = @$case;
        my $id = $h2->request('POST', $path, body => $body, %o);
        $h2->pump(10 * $k, sub { $h2->ended($id) });
        my $s = $h2->stream($id);
        is "$s->{status} $s->{body}", '200 ' . digest_line($body), "$what: digested";
    }
    # The body's end in an empty DATA frame of its own.
    my $body = body_of(40000);
    my $id = $h2->request('POST', '/u/', body => $body, hold => 1);
    $h2->send_body($id, $body, end => 0);
    $h2->pump(0.2 * $k);
    ok !$h2->ended($id), 'a body without END_STREAM yet: no answer';
    $h2->send_body($id, '');
    $h2->pump(10 * $k, sub { $h2->ended($id) });
    is "$h2->{streams}{$id}{status} $h2->{streams}{$id}{body}", '200 ' . digest_line($body),
        '... then END_STREAM in an empty DATA frame: digested';
    $h2->close_connection;
    finish($server, 'DATA frames');
};

subtest 'a client that opens its windows slowly: nginx waits, and nothing is lost' => sub {
    my $server = start_nginx(%conf);
    my $h2 = Test::Gateway::H2::Client->new($server, window => 16384, manual_window => 1);
    my %want = (
        '/s/bytes?size=1048576' => pattern(1048576),
        '/p/bytes?size=1048576' => pattern(1048576),
        '/d/stream?chunks=200&size=1000&wake_ms=1' => deferred_body(200, 1000),
        '/dp/stream?chunks=200&size=1000&wake_ms=1' => deferred_body(200, 1000),
    );
    my @paths = sort keys %want;
    my %id = map { ($_ => $h2->request('GET', $_)) } @paths;
    is_deeply held_at($h2, 16384, map { $id{$_} } @paths), [(16384) x @paths], 'each stream stops at its 16 KiB window';
    my $c = curl_h2($server, '/plain');
    is "$c->{status} $c->{body}", "200 plain\n", 'the worker serves meanwhile';
    # Each stream's window is opened 16 KiB at a time, once it has used it.
    my %granted = map { ($_ => 16384) } @paths;
    my $deadline = time + 30 * $k;
    my $used = sub { grep { !$h2->ended($id{$_}) && $h2->stream($id{$_})->{bytes} >= $granted{$_} } @paths };
    while (time < $deadline && grep { !$h2->ended($id{$_}) } @paths) {
        $h2->pump(1, $used);
        for my $path (@paths) {
            my $s = $h2->stream($id{$path});
            next if $h2->ended($id{$path}) || $s->{bytes} < $granted{$path};
            $h2->window_update($id{$path}, 16384);
            $granted{$path} += 16384;
        }
    }
    for my $path (@paths) {
        my $s = $h2->stream($id{$path});
        is "$s->{status} " . length($s->{body}), "200 " . length($want{$path}), "$path: 200, every byte";
        ok $s->{body} eq $want{$path}, "$path: in order" or diag first_difference($s->{body}, $want{$path});
        ok !defined $s->{reset}, "$path: ended, not reset";
    }
    $h2->close_connection;
    finish($server, 'slow windows');
};

subtest 'RST_STREAM mid-response: the streams reset, the others on the connection go on' => sub {
    my ($server, $before) = start_counted();
    # Streams pulled on the pool, held at their window (nginx waits on the client's flow
    # control); calls that run on the pool, are held by the app, or pass their deadline;
    # and an upload cut short.
    my $h2 = Test::Gateway::H2::Client->new($server, window => 16384, manual_window => 1);
    my @held = map { $h2->request('GET', $_) } '/p/bytes?size=67108864', '/dp/stream?chunks=100000&size=4096&wake_ms=0';
    my @calls = map { $h2->request('GET', $_) } '/p/sleep?ms=' . int(500 * $k), '/d/defer?ms=' . int(300 * $k),
        '/t/sleep?ms=' . int(600 * $k);
    my $upload = $h2->request('POST', '/u/', body => body_of(1048576), hold => 1);
    $h2->send_body($upload, body_of(40000), end => 0);
    my $lines = $h2->request('GET', '/s/lines?n=3');
    is_deeply held_at($h2, 16384, @held), [16384, 16384], 'two streams held at their window';
    $h2->reset($_) for @held, @calls, $upload;
    my $after = $h2->request('GET', '/p/sleep?ms=100');
    $h2->pump(5 * $k, sub { $h2->ended($lines) && $h2->ended($after) });
    is $h2->stream($lines)->{body}, "line 1\nline 2\nline 3\n", 'a stream opened before the resets completes';
    is "$h2->{streams}{$after}{status} $h2->{streams}{$after}{body}", "200 slept 100 ms on the thread_pool\n",
        'a call opened after them is answered on the same connection';
    # Streams reset while they flow: their window kept open, nginx writing as fast as it can.
    my $flowing = Test::Gateway::H2::Client->new($server);
    for my $path ('/p/bytes?size=67108864', '/dp/stream?chunks=100000&size=4096&wake_ms=0') {
        my $id = $flowing->request('GET', $path);
        $flowing->pump(10 * $k, sub { $flowing->stream($id)->{bytes} >= 1048576 });
        $flowing->reset($id);
        my $next = $flowing->request('GET', '/s/lines?n=2');
        $flowing->pump(5 * $k, sub { $flowing->ended($next) });
        is $flowing->stream($next)->{body}, "line 1\nline 2\n", "$path, flowing, reset after 1 MiB: the next stream on its connection completes";
    }
    # libstream's: the held one, the lines, the flowing one and the two next lines.
    aftermath($server, $before, 'after the resets', 5);
    $_->close_connection for $h2, $flowing;
    finish($server, 'RST_STREAM');
};

subtest 'the connection dropped mid-response and mid-upload' => sub {
    my ($server, $before) = start_counted();
    # Streams on the pool held at a window of 16 KiB, then of 1 MiB; calls out; an upload.
    for my $window (16384, 1048576) {
        my $h2 = Test::Gateway::H2::Client->new($server, window => $window, manual_window => 1);
        my @held = map { $h2->request('GET', $_) } '/p/bytes?size=67108864', '/dp/stream?chunks=100000&size=4096&wake_ms=0';
        $h2->request('GET', $_) for '/p/sleep?ms=' . int(500 * $k), '/d/defer?ms=' . int(300 * $k), '/s/lines?n=3';
        my $upload = $h2->request('POST', '/pu/', body => body_of(1048576), hold => 1);
        $h2->send_body($upload, body_of(40000), end => 0);
        is_deeply held_at($h2, $window, @held), [$window, $window], "window $window: two streams held at it";
        # The kernel resets the connection: openssl had not read all nginx sent.
        $h2->drop;
    }
    # Streams on the pool while they flow.
    my $h2 = Test::Gateway::H2::Client->new($server);
    my ($id) = map { $h2->request('GET', $_) } '/p/bytes?size=67108864', '/dp/stream?chunks=100000&size=4096&wake_ms=0';
    $h2->pump(10 * $k, sub { $h2->stream($id)->{bytes} >= 1048576 });
    $h2->drop;
    # libstream's: per held connection the bytes and the lines; the flowing bytes.
    aftermath($server, $before, 'after the dropped connections', 5);
    finish($server, 'dropped connections');
};

# A stream pulled on the event loop that waits for the client (its window, or the socket)
# waits for a write event; over HTTP/2 RST_STREAM brings none, nor does the connection's
# end unless frames of the stream are still queued: nginx runs the request's read handler
# for them, where its own writers leave ngx_http_test_reading to notice. Such a stream must
# still end: released, its request finalized, and the worker free to quit.
subtest 'streams on the event loop, held at the window or flowing, then reset or their connection dropped' => sub {
    my ($server, $before) = start_counted();
    my @paths = ('/s/bytes?size=67108864', '/d/stream?chunks=100000&size=4096&wake_ms=0');
    for my $case (['held', window => 16384, manual_window => 1], ['flowing']) {
        my ($state, %window) = @$case;
        for my $how ('reset', 'drop') {
            my $h2 = Test::Gateway::H2::Client->new($server, %window);
            my @ids = map { $h2->request('GET', $_) } @paths;
            if ($state eq 'held') {
                is_deeply held_at($h2, 16384, @ids), [16384, 16384], "$state, $how: two streams at their window";
            } else {
                $h2->pump(10 * $k, sub { !grep { $h2->stream($_)->{bytes} < 1048576 } @ids });
                cmp_ok min(map { $h2->stream($_)->{bytes} } @ids), '>=', 1048576, "$state, $how: two streams past 1 MiB";
            }
            if ($how eq 'reset') {
                $h2->reset($_) for @ids;
                my $next = $h2->request('GET', '/s/lines?n=2');
                $h2->pump(5 * $k, sub { $h2->ended($next) });
                is $h2->stream($next)->{body}, "line 1\nline 2\n", "$state, reset: the next stream on the connection completes";
                $h2->close_connection;
            } else {
                $h2->drop;
            }
        }
    }
    # libstream's: four bytes streams and two lines.
    aftermath($server, $before, 'after the streams on the event loop', 6);
    finish($server, 'streams on the event loop');
};

done_testing;
