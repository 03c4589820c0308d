package Test::Nginx::Socket;

# A from-scratch implementation of the data-driven nginx test harness
# known as openresty's Test::Nginx::Socket, for systems where that one is
# not installed.  Test files written for it run unchanged here: same
# sections, same defaults, same test names and test counts per block.
#
#   use Test::Nginx::Socket 'no_plan';
#   run_tests();
#   __DATA__
#   === TEST 1: name
#   --- config
#   location /t { return 200 "hi\n"; }
#   --- request
#   GET /t
#   --- response_body
#   hi
#
# Sections: main_config http_config config post_main_config server_name
# user_files init request more_headers raw_request
# raw_request_middle_delay pipelined_requests timeout abort shutdown
# ignore_response error_code error_code_like response_headers
# response_headers_like raw_response_headers_like/unlike
# response_body_filters response_body response_body_like/unlike error_log no_error_log grep_error_log(_out)
# access_log no_access_log shutdown_error_log no_shutdown_error_log wait
# must_die log_level skip_nginx skip_eval, plus Test::Base's ONLY, SKIP,
# LAST and filters.
#
# Environment: TEST_NGINX_BINARY, TEST_NGINX_PORT (also _SERVER_PORT and
# _CLIENT_PORT), TEST_NGINX_SERVROOT, TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_VERBOSE, TEST_NGINX_TIMEOUT, TEST_NGINX_SLEEP,
# TEST_NGINX_LOG_LEVEL, TEST_NGINX_MASTER_PROCESS, TEST_NGINX_NO_SHUFFLE,
# TEST_NGINX_CHECK_ACCUM_ERR_LOG, TEST_NGINX_RANDOMIZE; $TEST_NGINX_*
# in the config sections and user_files is replaced by its value.
#
# Beyond the openresty harness: nginx listens on 127.0.0.1 only, is
# stopped after every block, and a worker that died of a signal fails
# the block.
#
# Test::Base parses the blocks and applies the section filters (eval,
# chomp, ...); "-base" (not "-Base") makes this package a Test::Base
# subclass without Spiffy's source filter.

use Test::Base -base;

use strict;
use warnings;

use Digest::MD5 ();
use File::Path ();
use Digest::SHA ();
use IO::Select ();
use IO::Socket::INET ();
use List::Util qw(shuffle);
use POSIX qw(EAGAIN EINTR);
use Scalar::Util qw(looks_like_number);
use Time::HiRes qw(sleep);

use Test::Nginx::Util;

our @EXPORT = (@Test::Nginx::Util::EXPORT, qw(
    run_tests run_test add_response_body_check
));

our @ResponseBodyChecks;

sub add_response_body_check { push @ResponseBodyChecks, shift }

my $HaveConfig;   # a previous block wrote a config a config-less block reuses
my $LogSizeAtStop;   # error.log size when we began stopping nginx

sub run_tests {
    plan('no_plan') unless Test::More->builder->has_plan;
    diag("valgrind mode: " . join ' ', Test::Nginx::Util::nginx_command())
        if $Test::Nginx::Util::UseValgrind && $ENV{TEST_NGINX_VERBOSE};

    $NginxVersion = Test::Nginx::Util::nginx_version();
    $ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;

    # on ^C and the like, stop nginx at once and die of the same signal
    local @SIG{qw(INT TERM HUP)} = (sub {
        my $sig = shift;
        Test::Nginx::Util::cleanup('TERM');
        $SIG{$sig} = 'DEFAULT';
        kill $sig => $$;
    }) x 3;

    my @blocks = blocks();
    @blocks = shuffle @blocks unless $Test::Nginx::Util::NoShuffle;

    for my $block (@blocks) {
        $_->($block) for @Test::Nginx::Util::BlockPreprocessors;
        $block->set_value(name => "$0 " . $block->name);
        run_test($block);
    }

    Test::Nginx::Util::cleanup();

    if ($Test::Nginx::Util::UseValgrind) {
        my $t = \%Test::Nginx::Util::ValgrindTotals;
        diag("valgrind: $t->{blocks} nginx runs checked, $t->{errors} errors, "
             . "$t->{definite} bytes definitely lost, $t->{suppressed} errors suppressed");
    }
}

sub run_test {
    my $block = shift;
    my $name = $block->name;
    my $tb = Test::More->builder;
    my $failures_before = grep { !$_ } $tb->summary;

    if (my ($count, $reason) = skip_spec($block)) {
        SKIP: { skip("$name - $reason", $count) }
        return;
    }

    Test::Nginx::Util::stop_stale_nginx();

    undef $LogSizeAtStop;
    my $rand_ports = {};
    if (defined $block->config) {
        Test::Nginx::Util::setup_server_root();
        Test::Nginx::Util::write_user_files($block, $rand_ports);
        Test::Nginx::Util::write_config_file($block,
            Test::Nginx::Util::expand_env_in_text(scalar $block->config, $name, $rand_ports),
            $rand_ports);
        $HaveConfig = 1;
    } else {
        # like the openresty harness: keep using the previous block's server
        bail_out("$name - No '--- config' section specified and no "
                 . "previous one to reuse") unless $HaveConfig;
        Test::Nginx::Util::reset_logs();
    }

    if (defined $block->must_die) {
        run_must_die($block);
    } else {
        run_live($block, $rand_ports);
    }

    show_logs($name) if (grep { !$_ } $tb->summary) > $failures_before;
}

# --- skip_nginx / skip_eval: "N: condition" skips N subtests --------------

my %Compare = (
    '<'  => sub { $_[0] <  $_[1] },
    '<=' => sub { $_[0] <= $_[1] },
    '>'  => sub { $_[0] >  $_[1] },
    '>=' => sub { $_[0] >= $_[1] },
);

sub skip_spec {
    my $block = shift;
    my $name = $block->name;

    if (defined(my $spec = $block->skip_nginx)) {
        $spec =~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)(?:\s*:\s*(.*?))?\s*$/
            or bail_out("$name - Invalid --- skip_nginx spec: $spec");
        my ($count, $op, @version) = ($1, $2, $3, $4, $5);
        my $reason = $6 || "nginx version $op " . join '.', @version;
        return ($count, $reason) if $Compare{$op}->(
            $NginxVersion, Test::Nginx::Util::canonical_version(@version));
    }

    if (defined(my $spec = $block->skip_eval)) {
        $spec =~ /^\s*(\d+)\s*:\s*(.*)/s
            or bail_out("$name - Invalid --- skip_eval spec: $spec");
        my ($count, $code) = ($1, $2);
        my $skip = eval $code;
        bail_out("$name - skip_eval - failed to eval \"$code\": $@") if $@;
        return ($count, 'skip_eval') if $skip;
    }

    return;
}

# --- must_die: nginx has to refuse to start --------------------------------

sub run_must_die {
    my $block = shift;
    my $name = $block->name;
    my $expected_exit = $block->must_die;

    # nginx reports config errors on stderr (and, when its compiled-in
    # error log is a file, there too) before it reads our error_log line
    my $log_source = sub {
        [ @{ Test::Nginx::Util::read_lines($Test::Nginx::Util::StderrFile) },
          @{ Test::Nginx::Util::error_log_data() } ];
    };

    $Test::Nginx::Util::ErrLogPos = 0;
    for my $rep (0 .. $Test::Nginx::Util::RepeatEach - 1) {
        my $status = Test::Nginx::Util::launch_nginx();

        if (!defined $status) {
            fail("$name - nginx did not exit (it should have died)");
        } elsif ($status >> 8 == 127) {
            fail("$name - failed to execute $NginxBinary");
        } elsif ($status & 127) {
            fail("$name - nginx was killed by "
                 . Test::Nginx::Util::describe_status($status));
        } elsif (looks_like_number($expected_exit)) {
            Test::More::is($status >> 8, $expected_exit + 0,
                           "$name - die with the expected exit code");
        } else {
            Test::More::isnt($status, 0, "$name - die as expected");
        }

        check_error_log($block, $rep, $log_source);
        check_valgrind($block, !defined $status);

        if (defined $status && $status == 0) {
            warn "WARNING: $name - nginx must die but it does not; killing it\n";
            $Test::Nginx::Util::NginxPid = Test::Nginx::Util::wait_for_pid_file();
            Test::Nginx::Util::stop_nginx();
        }
    }
}

# --- normal blocks: start nginx, send the request(s), check, stop ---------

sub run_live {
    my ($block, $rand_ports) = @_;
    my $name = $block->name;

    if (my $err = Test::Nginx::Util::start_nginx()) {
        fail("$name - nginx failed to start: $err");
        Test::Nginx::Util::stop_nginx();
        return;
    }
    $Test::Nginx::Util::ErrLogPos = 0;

    if (defined $block->init) {
        eval $block->init;
        bail_out("$name - init failed: $@") if $@;
    }

    for my $rep (0 .. $Test::Nginx::Util::RepeatEach - 1) {
        Test::Nginx::Util::write_user_files($block, $rand_ports) if $rep > 0;
        run_requests($block, $rep);
    }

    $LogSizeAtStop = -s $ErrLogFile;
    my $how = Test::Nginx::Util::stop_nginx();
    fail("$name - nginx exited while the test was running (crashed?)")
        if $how eq 'gone';
    check_valgrind($block, $how eq 'killed');

    check_shutdown_error_log($block) if defined $block->shutdown_error_log;

    # A worker killed by a signal is a crash whatever the block expects;
    # the master reports it as '... exited on signal N'.
    for my $line (@{ Test::Nginx::Util::read_lines($ErrLogFile) }) {
        if ($line =~ /exited on signal \d+/) {
            chomp $line;
            fail("$name - nginx process crashed: $line");
        }
    }
}

# One round of the block's requests plus the response and log checks,
# in the same order and number as the openresty harness.
sub run_requests {
    my ($block, $rep) = @_;
    my $name = $block->name;

    my $requests = build_requests($block);
    my $timeout = block_timeout(scalar $block->timeout) // timeout();
    my $pipelined = $block->pipelined_requests;
    my $need_array = $pipelined ? 1 : @$requests > 1;
    my $req_idx = 0;
    my $res;

    for my $i (0 .. $#$requests) {
        my ($raw, $head_req) = send_request($block, $requests->[$i], $timeout);
        my $responses = $pipelined ? @$pipelined : 1;

        while ($responses-- > 0) {
            my $left;
            unless (defined $block->ignore_response) {
                ($res, my $raw_headers, $left) = parse_response($name, $raw, $head_req);

                if (!$pipelined && defined $left && length $left) {
                    (my $shown = $left) =~ s/([\0-\037\200-\377])/sprintf '\\x{%02x}', ord $1/ge;
                    warn "WARNING: $name - unexpected extra bytes after the response: \"$shown\"\n";
                }

                check_error_code($block, $res, $req_idx, $need_array);
                check_raw_response_headers($block, $raw_headers, $req_idx, $need_array);
                check_response_headers($block, $res, $raw_headers, $req_idx, $need_array);
                transform_response_body($block, $res, $req_idx);
                check_response_body($block, $res, $req_idx, $rep, $need_array);
            }
            $raw = $left // '';

            if ($responses > 0 || $i < $#$requests) {
                sleep $block->wait if $block->wait;
                check_error_log($block, $rep);
                check_access_log($block, $rep) unless defined $block->ignore_response;
            }
            $req_idx++;
        }
    }

    sleep $block->wait if $block->wait;
    check_error_log($block, $rep);
    check_access_log($block, $rep) unless defined $block->ignore_response;
}

# --- building requests -----------------------------------------------------
#
# Returns a list of requests, each sent on its own connection; a request
# is a list of packets ({value => bytes, delay_before => secs}), each
# written with its own syswrite().

sub build_requests {
    my $block = shift;
    my $name = $block->name;

    if (defined(my $raw = $block->raw_request)) {
        my @packets = ref $raw eq 'ARRAY' ? @$raw : ($raw);
        return [[ map { +{ value => $_ } } @packets ]];
    }

    my $more_headers = $block->more_headers // '';

    if (defined(my $pipelined = $block->pipelined_requests)) {
        bail_out("$name - --- pipelined_requests must be an array (use eval)")
            unless ref $pipelined eq 'ARRAY';
        my $all = '';
        for my $i (0 .. $#$pipelined) {
            my $connection = $i == $#$pipelined ? 'close' : 'keep-alive';
            $all .= join '', assemble_request($name, [$pipelined->[$i]],
                headers_for($name, $more_headers, $i), $connection);
        }
        return [[ { value => $all } ]];
    }

    my $request = $block->request;
    bail_out("$name - no --- request, --- raw_request or "
             . "--- pipelined_requests section") unless defined $request;

    if (!ref $request) {
        # leading blank space and "# comment" lines are not part of it
        1 while $request =~ s/^\s*#[^\n]+\s+|^\s+//;
        my @out = assemble_request($name, [$request],
            headers_for($name, $more_headers, 0), 'close');
        return [[ { value => $out[0] } ]];
    }

    bail_out("$name - --- request must be a string or an array of requests")
        unless ref $request eq 'ARRAY';

    my @requests;
    for my $i (0 .. $#$request) {
        my $one = $request->[$i];
        my @packets = !ref $one ? ({ value => $one })
                    : ref $one eq 'ARRAY' ? map { packet($name, $_) } @$one
                    : bail_out("$name - a request must be a string or an "
                               . "array of packets");
        my @out = assemble_request($name, [map { $_->{value} } @packets],
            headers_for($name, $more_headers, $i), 'close');
        push @requests, [ map { +{ %{ $packets[$_] }, value => $out[$_] } }
                          0 .. $#packets ];
    }
    return \@requests;
}

sub packet {
    my ($name, $p) = @_;
    return { value => $p } unless ref $p;
    return $p if ref $p eq 'HASH';
    bail_out("$name - a packet must be a string or a hash with a value");
}

# --- more_headers (a string, or an array with one string per request)
# becomes "Name: value\r\n" lines; also says whether the body is chunked.
sub headers_for {
    my ($name, $more, $i) = @_;
    if (ref $more eq 'ARRAY') {
        $more = $more->[$i];
        bail_out("$name - --- more_headers has no entry for request $i")
            unless defined $more;
    }

    my ($out, $chunked) = ('', 0);
    for my $line (split /\n+/, $more) {
        next if $line =~ /^\s*#/;
        my ($key, $value) = split /:\s*/, $line, 2;
        $value //= '';
        $chunked = 1 if lc $key eq 'transfer-encoding' && $value eq 'chunked';
        $out .= "$key: $value\r\n";
    }
    return ($out, $chunked);
}

# Turn "METHOD [URI [VERSION]]\nBODY", split over packets, into a full
# HTTP request split over the same number of packets.  The request is
# cut into consecutive pieces, each replaced by its rewritten form; a
# piece that straddles packets hands its replacement out across them in
# order, and inserted text (the headers) goes into the packet where the
# request line ended.
sub assemble_request {
    my ($name, $packets, $more_headers, $chunked, $connection) = @_;
    my $text = join '', @$packets;

    my ($first) = $text =~ /\A([^\n]*\n?)/;
    $first =~ /^(\s*)(\S+)( *)(?:(\S+)( *))?(?:(\S+)( *))?(\s*)$/
        or bail_out("$name - Request line is not valid. Should be "
                    . "'meth [url [version]]' but got \"$first\".");
    my ($lead, $method, $sp1, $uri, $sp2, $version, $sp3, $eol) =
        map { $_ // '' } ($1, $2, $3, $4, $5, $6, $7, $8);

    my $content = substr $text, length $first;
    my $body = $content;
    my $length_header = '';
    if (!$chunked && length $content && $more_headers !~ /(?:^|\n)Content-Length:/) {
        $body =~ s/^\s+|\s+$//g;
        $length_header = 'Content-Length: ' . length($body) . "\r\n";
    }

    my $headers = '';
    $headers .= "Host: $Test::Nginx::Util::ServerName\r\n"
        if $more_headers !~ /(?:^|\n)Host:/i;
    $headers .= "Connection: $connection\r\n"
        if $more_headers !~ /(?:^|\n)Connection/i;
    $headers .= "$more_headers$length_header\r\n";

    # [length in the original text, replacement]
    my @pieces = (
        [length $lead, ''],
        [length $method, "$method "],
        [length $sp1, ''],
        [length $uri, (length $uri ? $uri : '/') . ' '],
        [length $sp2, ''],
        [length $version, (length $version ? $version : 'HTTP/1.1') . "\r\n"],
        [length($sp3) + length($eol), ''],
        [0, $headers],
        [length $content, $body],
    );

    my @left = map { length } @$packets;   # unconsumed original bytes
    my @out = ('') x @$packets;
    my $p = 0;
    for my $piece (@pieces) {
        my ($len, $replacement) = @$piece;
        while ($len > 0) {
            $p++ while $left[$p] == 0;
            my $take = $len < $left[$p] ? $len : $left[$p];
            $left[$p] -= $take;
            $len -= $take;
            # the last bit of this piece gets whatever replacement is left
            $out[$p] .= $len ? substr($replacement, 0, $take, '') : $replacement;
            $replacement = '' unless $len;
        }
        $out[$p] .= $replacement;
    }
    return @out;
}

# --- the HTTP client ----------------------------------------------------

# Send one request (a list of packets) on a new connection and read until
# the server closes it.  The timeout applies to each wait for the socket,
# as in the openresty harness.  Returns the raw response and whether it
# was a HEAD request.
sub send_request {
    my ($block, $packets, $timeout) = @_;
    my $name = $block->name;
    my $head_req = (join '', map { $_->{value} } @$packets) =~ /^\s*HEAD\s+/;

    my $addr = $block->server_addr_for_client // server_addr();
    my $port = server_port_for_client();
    my $sock = IO::Socket::INET->new(
        PeerAddr => $addr, PeerPort => $port, Proto => 'tcp',
        Timeout => $timeout);
    if (!$sock) {
        fail("$name - Can't connect to $addr:$port: $@");
        return ('', $head_req);
    }
    $sock->blocking(0);
    warn "sending request: [", join('', map { $_->{value} } @$packets), "]\n"
        if $Test::Nginx::Util::Verbose;

    local $SIG{PIPE} = 'IGNORE';
    my $select = IO::Select->new($sock);
    my @queue = @$packets;
    my $out = (shift @queue)->{value};
    my $writing = 1;
    my $resp = '';

    IO: while (1) {
        $! = 0;
        my ($readable, $writable) =
            IO::Select->select($select, $writing ? $select : undef, undef, $timeout);
        if (!$readable && !$writable) {
            next IO if $! == EINTR;
            fail("ERROR: client socket timed out - $name")
                unless defined $block->abort;
            last IO;
        }

        if ($writable && @$writable) {
            while (1) {
                if (length $out) {
                    my $n = syswrite $sock, $out;
                    if (!defined $n) {
                        next IO if $! == EAGAIN;
                        warn "WARNING: $name - write failed: $!\n";
                        $writing = 0;
                        last;
                    }
                    substr($out, 0, $n, '');
                    next;
                }
                if (my $next = shift @queue) {
                    my $delay = $next->{delay_before} // $block->raw_request_middle_delay;
                    sleep $delay if $delay;
                    $out = $next->{value};
                    next;
                }
                $writing = 0;
                if (defined(my $how = $block->shutdown)) {
                    shutdown $sock, length $how ? $how : 1;
                }
                last;
            }
        }

        if ($readable && @$readable) {
            while (1) {
                my $n = sysread $sock, my $buf, 65536;
                if (!defined $n) {
                    next IO if $! == EAGAIN;
                    warn "WARNING: $name - HTTP response read failure: $!\n";
                    last IO;
                }
                last IO if $n == 0;
                $resp .= $buf;
            }
        }
    }

    close $sock;
    warn "got response: [$resp]\n" if $Test::Nginx::Util::Verbose;
    return ($resp, $head_req);
}

# Split one response off the front of $raw.  Returns a response hash
# (code, headers as [name, value] pairs, content), the raw header block
# (status line included) and the bytes after this response.  Malformed
# chunked bodies fail the test and yield no response.
sub parse_response {
    my ($name, $raw, $head_req) = @_;

    my ($head, $rest) = $raw =~ /\A(.*?\r?\n)\r?\n(.*)\z/s;
    ($head, $rest) = ($raw, '') unless defined $head;
    my $raw_headers = $raw =~ /\A(.*?\r\n)\r\n/s ? $1 : '';

    my ($status_line, @lines) = split /\r?\n/, $head;
    my ($code) = ($status_line // '') =~ /^\S+[ \t]+(\d+)(?:\s|$)/;
    my @headers;
    for my $line (@lines) {
        if ($line =~ /^[ \t]+(.*)/ && @headers) {
            $headers[-1][1] .= " $1";
        } elsif ($line =~ /^([^:]+?)[ \t]*:[ \t]*(.*?)[ \t]*$/) {
            push @headers, [$1, $2];
        }
    }
    my $res = { code => $code, headers => \@headers, content => $rest };

    return ($res, $raw_headers)
        if defined $code && ($code == 304 || $code == 101);

    my $encoding = header_value($res, 'Transfer-Encoding');
    my $length = header_value($res, 'Content-Length');
    my $left;

    if (defined $encoding && lc $encoding eq 'chunked') {
        my $decoded = '';
        pos($rest) = 0;
        while (1) {
            if ($rest =~ /\G[ \t]*([0-9A-Fa-f]+)[ \t]*(?:;[^\r\n]*)?\r\n/gc) {
                my $size = hex $1;
                if ($size == 0) {
                    # optional trailer lines, then the final empty line
                    1 while $rest =~ /\G[^\r\n]+\r\n/gc;
                    if ($rest !~ /\G\r\n/gc) {
                        fail("$name - invalid chunked data received (no CRLF after the last chunk)");
                        return (undef, $raw_headers);
                    }
                    $left = substr $rest, pos $rest;
                    last;
                }
                if (length($rest) - pos($rest) < $size + 2) {
                    fail("$name - invalid chunked data received "
                         . "(not enough octets for the data section)");
                    return (undef, $raw_headers);
                }
                $decoded .= substr $rest, pos($rest), $size;
                pos($rest) += $size;
                if ($rest !~ /\G\r\n/gc) {
                    fail("$name - invalid chunked data received (expected CRLF)");
                    return (undef, $raw_headers);
                }
            } elsif ($rest =~ /\G(.+)/gcs) {
                fail("$name - invalid chunked body received: $1");
                return (undef, $raw_headers);
            } else {
                fail("$name - no last chunk found - $rest");
                return (undef, $raw_headers);
            }
        }
        $res->{content} = $decoded;

    } elsif (defined $length && $length =~ /^\d+$/) {
        if (length $rest < $length) {
            warn "WARNING: $name - response body truncated: $length expected, "
               . "but got " . length($rest) . "\n" unless $head_req;
        } elsif (length $rest > $length) {
            $left = substr $rest, $length;
            $res->{content} = substr $rest, 0, $length;
        }
    }

    return ($res, $raw_headers, $left);
}

# All values of a response header (case-insensitive name), joined by ", ".
sub header_value {
    my ($res, $key) = @_;
    return undef unless $res;
    my @values = map { $_->[1] } grep { lc $_->[0] eq lc $key } @{ $res->{headers} };
    return @values ? join(', ', @values) : undef;
}

# --- response checks ------------------------------------------------------

# An expectation given per request must be an array when the block sends
# several requests; a one-element array is fine for a single request.
sub indexed_value {
    my ($name, $value, $req_idx, $need_array) = @_;
    return $value->[$need_array ? $req_idx : 0] if ref $value eq 'ARRAY';
    bail_out("$name - You asked for many requests, the expected results "
             . "should be arrays as well.") if $need_array;
    return $value;
}

sub check_error_code {
    my ($block, $res, $req_idx, $need_array) = @_;
    my $name = $block->name;
    my $code = ($res && $res->{code}) || '';

    if (defined $block->error_code_like) {
        my $pat = indexed_value($name, $block->error_code_like, $req_idx, $need_array);
        Test::More::like($code, qr/$pat/sm, "$name - status code ok");
    } elsif (defined $block->error_code) {
        Test::More::is($code, indexed_value($name, $block->error_code, $req_idx, $need_array),
                       "$name - status code ok");
    } else {
        Test::More::is($code, 200, "$name - status code ok");
    }
}

sub check_raw_response_headers {
    my ($block, $raw_headers, $req_idx, $need_array) = @_;
    my $name = $block->name;

    if (defined $block->raw_response_headers_like) {
        my $pat = indexed_value($name, $block->raw_response_headers_like, $req_idx, $need_array);
        Test::More::like($raw_headers, qr/$pat/s, "$name - raw resp headers like");
    }
    if (defined $block->raw_response_headers_unlike) {
        my $pat = indexed_value($name, $block->raw_response_headers_unlike, $req_idx, $need_array);
        Test::More::unlike($raw_headers, qr/$pat/s, "$name - raw resp headers unlike");
    }
}

# "Name: value" lines; "!Name" means the header must be absent (undef).
# A name given twice counts once, with its last value.
sub parse_header_spec {
    my $spec = shift;
    my (@order, %value);
    for my $line (split /\n/, $spec) {
        $line =~ s/^\s+|\s+$//g;
        my ($key, $val);
        if ($line =~ s/^!\s*//) {
            $key = $line;
        } else {
            ($key, $val) = split /\s*:\s*/, $line, 2;
        }
        push @order, $key unless exists $value{$key};
        $value{$key} = $val;
    }
    return map { [$_, $value{$_}] } @order;
}

sub check_response_headers {
    my ($block, $res, $raw_headers, $req_idx, $need_array) = @_;
    my $name = $block->name;

    if (defined $block->response_headers) {
        my $spec = indexed_value($name, $block->response_headers, $req_idx, $need_array);
        for my $pair (parse_header_spec($spec)) {
            my ($key, $val) = @$pair;
            if (!defined $val) {
                Test::More::unlike($raw_headers, qr/^\s*\Q$key\E\s*:/ms,
                                   "$name - header $key not present in the raw headers");
                next;
            }
            $val =~ s/\$ServerPort\b/$ServerPort/g;
            $val =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
            Test::More::is(header_value($res, $key) // '', $val, "$name - header $key ok");
        }

    } elsif (defined $block->response_headers_like) {
        my $spec = indexed_value($name, $block->response_headers_like, $req_idx, $need_array);
        for my $pair (parse_header_spec($spec)) {
            my ($key, $pat) = @$pair;
            $pat //= '';
            Test::More::like(header_value($res, $key) // '', qr/^$pat$/,
                             "$name - header $key like ok");
        }
    }
}

# --- response_body_filters: what the body checks see.  Builtin filter
# names (whitespace-separated in plain text) or code refs (eval), applied
# in order; a two-dimensional array gives each request its own list.
my %BodyFilter = (
    md5_hex  => \&Digest::MD5::md5_hex,
    sha1_hex => \&Digest::SHA::sha1_hex,
    uc       => sub { uc $_[0] },
    lc       => sub { lc $_[0] },
    ucfirst  => sub { ucfirst $_[0] },
    lcfirst  => sub { lcfirst $_[0] },
    length   => sub { length $_[0] },
);

sub transform_response_body {
    my ($block, $res, $req_idx) = @_;
    my $name = $block->name;
    my $filters = $block->response_body_filters;
    return unless defined $filters && $res && defined $res->{content};

    if (!ref $filters) {
        (my $list = $filters) =~ s/^\s+|\s+$//g;
        $filters = [split /\s+/, $list];
    } elsif (ref $filters ne 'ARRAY') {
        $filters = [$filters];
    }
    if (ref $filters->[0] eq 'ARRAY') {
        bail_out("$name - the --- response_body_filters two-dimensional array "
                 . "only be like [[uc], [lc]] not [[uc], lc]")
            if grep { ref $_ ne 'ARRAY' } @$filters;
        $filters = $filters->[$req_idx];
        bail_out("$name - the ---response_body_filters two-dimensional array "
                 . "unmatch the specified request($req_idx)") unless defined $filters;
        $filters = [$filters] unless ref $filters eq 'ARRAY';
    }

    my $content = $res->{content};
    for my $filter (@$filters) {
        if (ref $filter eq 'CODE') {
            $content = $filter->($content);
        } elsif (!ref $filter && $BodyFilter{$filter}) {
            $content = $BodyFilter{$filter}->($content);
        } elsif (!ref $filter) {
            bail_out("$name - unknown filter, \"$filter\", "
                     . "specified in the --- response_body_filters section");
        } else {
            bail_out("$name - the --- response_body_filters section "
                     . "only supports subroutine reference values and string values");
        }
    }
    $res->{content} = $content;
}

sub check_response_body {
    my ($block, $res, $req_idx, $rep, $need_array) = @_;
    my $name = $block->name;
    my $content = $res ? $res->{content} : undef;

    if (defined $block->response_body) {
        my $expected = indexed_value($name, $block->response_body, $req_idx, $need_array);
        if (defined $expected && !ref $expected) {
            $expected =~ s/\$ServerPort\b/$ServerPort/g;
            $expected =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
        }
        if (ref $expected) {
            Test::More::like($content, $expected,
                "$name - response_body - like (repeated req $rep, req $req_idx)");
        } else {
            is_str($content, $expected,
                "$name - response_body - response is expected (repeated req $rep, req $req_idx)");
        }

    } elsif (defined $block->response_body_like || defined $block->response_body_unlike) {
        my $type = defined $block->response_body_like ? 'like' : 'unlike';
        my $method = "response_body_$type";
        my $pat = indexed_value($name, $block->$method, $req_idx, $need_array);
        $pat =~ s/\$ServerPort\b/$ServerPort/g;
        $pat =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;

        (my $summary = $content // '') =~ s/^\s+|\s+$//g;
        $summary =~ s/\s+/ /g;
        my $check = $type eq 'like' ? \&Test::More::like : \&Test::More::unlike;
        $check->($content, qr/$pat/s, "$name - $method - response is expected ($summary)");
    }

    $_->($block, $content, $req_idx, $rep, 0) for @ResponseBodyChecks;
}

# --- log checks -------------------------------------------------------------

# A pattern section: lines of substrings, or (eval) a qr// or an array of
# substrings and qr//s.
sub pattern_list {
    my $pats = shift;
    return [@$pats] if ref $pats eq 'ARRAY';
    return [$pats] if ref $pats;
    chomp(my $copy = $pats);
    return [split /\n+/, $copy];
}

sub line_matches {
    my ($line, $pat) = @_;
    return ref $pat ? $line =~ $pat : index($line, $pat) >= 0;
}

sub mentions {
    my ($pats, $text) = @_;
    return scalar grep { !ref $_ || ref $_ eq 'Regexp' ? index("$_", $text) >= 0 : 0 }
        ref $pats eq 'ARRAY' ? @$pats : ($pats);
}

sub show_pattern {
    my $s = shift;
    chomp $s;
    $s =~ s/"/\\"/g;
    $s =~ s/\r/\\r/g;
    $s =~ s/\n/\\n/g;
    return $s;
}

# Each pattern must match some line: one passing test per pattern as it
# is found, then one failing test per pattern never found.
sub expect_patterns {
    my ($name, $pats, $lines, $file, $suffix) = @_;
    my @pending = @{ pattern_list($pats) };
    for my $line (@$lines) {
        for my $pat (@pending) {
            next unless defined $pat && line_matches($line, $pat);
            pass("$name - pattern \"$pat\" matches a line in $file$suffix");
            undef $pat;
        }
    }
    fail("$name - pattern \"$_\" should match a line in $file$suffix")
        for grep { defined } @pending;
}

# No pattern may match any line: a failing test for every matching line,
# then a passing test for each pattern that never matched.
sub reject_patterns {
    my ($name, $pats, $lines, $file, $suffix) = @_;
    my @pats = grep { defined } @{ pattern_list($pats) };
    my %found;
    for my $i (0 .. $#$lines) {
        for my $pat (@pats) {
            next unless line_matches($lines->[$i], $pat);
            $found{$pat} = 1;
            my $last = $i + 9 < $#$lines ? $i + 9 : $#$lines;
            fail("$name - pattern \"" . show_pattern($pat) . "\" should not match any "
                 . "line in $file but matches line \"" . show_pattern($lines->[$i])
                 . "\"$suffix\n" . join '', @$lines[$i + 1 .. $last]);
        }
    }
    pass("$name - pattern \"" . show_pattern($_) . "\" does not match a line in $file$suffix")
        for grep { !$found{$_} } @pats;
}

sub check_error_log {
    my ($block, $rep, $source) = @_;
    my $name = $block->name;
    my $lines = ($source // \&Test::Nginx::Util::error_log_data)->();
    my $suffix = " (req $rep)";

    if (defined(my $grep = $block->grep_error_log)) {
        $grep = $grep->[$rep] if ref $grep eq 'ARRAY';
        my $expected = $block->grep_error_log_out;
        bail_out("$name - No --- grep_error_log_out defined but --- grep_error_log is defined")
            unless defined $expected;
        $expected = $expected->[$rep] if ref $expected eq 'ARRAY';

        my $matched = '';
        for my $line (@$lines) {
            my $hit = ref $grep ? ($line =~ $grep ? $& : undef)
                    : index($line, $grep) >= 0 ? $grep : undef;
            $matched .= "$hit\n" if defined $hit && $hit !~ /\n/;
        }
        is_str($matched, $expected, "$name - grep_error_log_out$suffix");
    } elsif (defined $block->grep_error_log_out) {
        bail_out("$name - No --- grep_error_log defined but --- grep_error_log_out is defined");
    }

    my %warn_about = map { $_ => 1 } qw(alert crit emerg);
    for my $pats (grep { defined } $block->error_log, $block->no_error_log) {
        delete $warn_about{$_} for grep { mentions($pats, "[$_") } keys %warn_about;
    }

    expect_patterns($name, $block->error_log, $lines, 'error.log', $suffix)
        if defined $block->error_log;
    reject_patterns($name, $block->no_error_log, $lines, 'error.log', $suffix)
        if defined $block->no_error_log;

    for my $line (@$lines) {
        for my $level (sort keys %warn_about) {
            warn "WARNING: $name - $line" if $line =~ /\[$level\]/;
        }
        if ($line =~ /\bAssertion .*?failed\b/) {
            chomp(my $l = $line);
            fail("$name - $l");
        }
    }
}

sub check_access_log {
    my ($block, $rep) = @_;
    my $name = $block->name;
    return unless defined $block->access_log || defined $block->no_access_log;

    my $lines = Test::Nginx::Util::access_log_data();
    expect_patterns($name, $block->access_log, $lines, 'access.log', " (req $rep)")
        if defined $block->access_log;
    reject_patterns($name, $block->no_access_log, $lines, 'access.log', " (req $rep)")
        if defined $block->no_access_log;
}

# Log lines written from the last check through nginx's exit.  As in the
# openresty harness, no_shutdown_error_log is only looked at together
# with shutdown_error_log.
sub check_shutdown_error_log {
    my $block = shift;
    my $name = $block->name;
    my $lines = Test::Nginx::Util::error_log_data();

    reject_patterns($name, $block->no_shutdown_error_log, $lines, 'error.log', '')
        if defined $block->no_shutdown_error_log;
    expect_patterns($name, $block->shutdown_error_log, $lines, 'error.log', '');
}

# --- valgrind mode: the report of the nginx that just exited ---------------------

sub check_valgrind {
    my ($block, $killed) = @_;
    return unless $Test::Nginx::Util::UseValgrind;
    my $name = $block->name;
    my $report = Test::Nginx::Util::valgrind_report();

    if (defined(my $dir = $Test::Nginx::Util::ValgrindLogDir)) {
        # "path/018-hostile.t TEST 7: ..." => 018-hostile-7
        my $file = $name =~ /^(?:\S*\/)?(\S+?)\.t TEST (\w+):/ ? "$1-$2" : $name =~ s/\W+/_/gr;
        File::Path::make_path($dir);
        Test::Nginx::Util::write_file("$dir/$file.log", $report ? $report->{text} : '');
    }

    if (!$report || !defined $report->{errors}) {
        # A killed nginx leaves no summary; that is already a failure of its own.
        fail("$name - valgrind wrote no report (see $Test::Nginx::Util::ValgrindLog)")
            unless $killed;
        return;
    }
    my $totals = \%Test::Nginx::Util::ValgrindTotals;
    $totals->{blocks}++;
    $totals->{$_} += $report->{$_} for qw(errors definite suppressed);
    return unless $report->{errors} || $report->{definite};

    # The first few error records: "==pid== " lines up to a blank one.
    my @records = grep { /\S/ } split /^==\d+==\s*\n/m, $report->{text} =~ s/^(?!==\d+==).*\n//mgr;
    my @errors = grep { !/^==\d+== (?:Memcheck|Copyright|Using|Command|Parent PID|HEAP SUMMARY|LEAK SUMMARY|ERROR SUMMARY|For lists|For counts|Rerun|\s+(?:in use|total heap|definitely|indirectly|possibly|still|suppressed))/ } @records;
    my $shown = join "\n", @errors > 3 ? @errors[0 .. 2] : @errors;
    fail("$name - valgrind: $report->{errors} errors, $report->{definite} bytes definitely lost\n$shown");
}

# After a failed block: what nginx said, to debug without re-running.
# The error log's tail is taken from before the shutdown, whose lines
# would otherwise fill it.
sub show_logs {
    my $name = shift;
    my $stderr = Test::Nginx::Util::tail_of($Test::Nginx::Util::StderrFile, 30);
    diag("nginx stderr ($Test::Nginx::Util::StderrFile):\n$stderr") if length $stderr;
    my $errlog = Test::Nginx::Util::tail_of($ErrLogFile, 30, $LogSizeAtStop);
    my $when = defined $LogSizeAtStop ? ' before nginx was stopped' : '';
    diag("last lines of $ErrLogFile$when, for $name:\n$errlog") if length $errlog;
}

1;
