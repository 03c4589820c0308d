package Test::Gateway::H2;

# HTTP/2 over TLS for the plain Test::More suites on Test::Gateway::Server: the server's
# side (a self-signed certificate made at test time, and the listen syntax of this nginx),
# curl as the ordinary client (ALPN h2, one request or several multiplexed on one
# connection, or a stream read as it arrives), and a frame-level client for what curl
# cannot do: a flow-control window opened at the test's pace, RST_STREAM on one stream
# while the others go on, a connection dropped at a given moment, a request body sent in
# DATA frames with pauses.
#
# The frame-level client speaks through `openssl s_client -alpn h2`, which does the TLS,
# so the suites need no Perl TLS module. It encodes its header blocks as HPACK literals
# without indexing, and decodes only the :status of a response (nginx sends it first, as
# an indexed field or a raw literal).

use strict;
use warnings;
use Exporter 'import';
use File::Temp qw(tempdir);
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time);
use Test::Gateway::Process qw(slurp);
use Test::Gateway::Server qw(nginx_version patience);

our @EXPORT_OK = qw(tls_h2 url curl_h2 curl_parallel curl_stream);

my $json = JSON::PP->new;

# --- the server -------------------------------------------------------------------------

# Makes a self-signed certificate for localhost in $dir and returns the options for
# start_nginx's listen (TLS and HTTP/2 on the port) and the lines for its server block.
# nginx 1.25.1 brought the `http2` directive and deprecated `listen ... http2` (with a
# [warn] at every start); older ones, such as Debian's 1.22, know only the latter.
sub tls_h2 {
    my $dir = shift;
    my @command = ('openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
        '-nodes', '-keyout', "$dir/key.pem", '-out', "$dir/cert.pem", '-days', '2', '-subj', '/CN=localhost');
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDOUT, '>', "$dir/openssl.out";
        open STDERR, '>&', \*STDOUT;
        exec @command or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    die "openssl req failed: " . slurp("$dir/openssl.out") if $? || !-s "$dir/cert.pem";
    my @version = nginx_version();
    my $directive = @version && ($version[0] <=> 1 || $version[1] <=> 25 || $version[2] <=> 1) >= 0;
    return (
        listen => $directive ? 'ssl' : 'ssl http2',
        tls => ($directive ? "        http2 on;\n" : '')
            . "        ssl_certificate $dir/cert.pem;\n        ssl_certificate_key $dir/key.pem;\n",
    );
}

sub url {
    my ($server, $path) = @_;
    return "https://127.0.0.1:$server->{port}$path";
}

# --- curl -------------------------------------------------------------------------------

my $scratch;    # curl's output files

# Runs curl over TLS and HTTP/2 (ALPN; the certificate is not checked) with @args, its
# stdin from $o{stdin} (a file) or nothing. Returns what it printed with -w '%{json}\n',
# one hash per transfer, and what it said on stderr.
sub run_curl {
    my ($o, @args) = @_;
    $scratch //= tempdir('gateway-h2-curl-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my ($out, $err) = ("$scratch/out", "$scratch/err");
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDIN, '<', $o->{stdin} // '/dev/null';
        open STDOUT, '>', $out;
        open STDERR, '>', $err;
        { exec 'curl', '-sS', '-k', '--http2', '--max-time', 20 * patience(), '-w', '%{json}\n', @args }
        POSIX::_exit(127);
    }
    waitpid $pid, 0;
    my @transfers = map { $json->decode($_) } grep { /^\{/ } split /\n/, slurp($out);
    return (\@transfers, slurp($err));
}

# One request with curl: GET $path, or POST with data => a file's path (sent with its
# Content-Length) or stdin => a file's path (sent as it is read: over HTTP/2, without a
# Content-Length); head => 1 for HEAD. Returns status, version (curl's http_version: "2"),
# headers (by lower-cased name), body, exit (curl's exit code), error (its message) and
# time (seconds to the end).
sub curl_h2 {
    my ($server, $path, %o) = @_;
    $scratch //= tempdir('gateway-h2-curl-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my @args = ('-D', "$scratch/head", '-o', "$scratch/body");
    push @args, '--data-binary', "\@$o{data}" if defined $o{data};
    push @args, '-X', 'POST', '-T', '-' if defined $o{stdin};
    push @args, '-I' if $o{head};
    unlink "$scratch/head", "$scratch/body";
    my ($transfers, $stderr) = run_curl({ stdin => $o{stdin} }, @args, url($server, $path));
    my $t = $transfers->[0] // {};
    my ($status_line, @lines) = split /\r\n/, slurp("$scratch/head");
    return {
        uri => $path,
        status => $t->{response_code} || 'none',
        version => $t->{http_version} // 'none',
        status_line => $status_line // '',
        headers => { map { /^([^:]+):\s*(.*)$/ ? (lc $1 => $2) : () } @lines },
        body => slurp("$scratch/body"),
        exit => $t->{exitcode} // 'none',
        error => $t->{errormsg} || ($stderr =~ s/\s+\z//r),
        time => $t->{time_total},
    };
}

# Several GETs at once with curl --parallel: curl waits for the first connection and
# multiplexes the others on it. Returns, in the order of @paths, hashes as curl_h2's
# (without headers) with connects: how many connections the transfer opened.
sub curl_parallel {
    my ($server, @paths) = @_;
    $scratch //= tempdir('gateway-h2-curl-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    unlink glob "$scratch/body-*";
    my @args = ('--parallel', '--parallel-max', scalar @paths);
    push @args, map { ('-o', "$scratch/body-$_", url($server, $paths[$_])) } 0 .. $#paths;
    my ($transfers) = run_curl({}, @args);
    my %by_file = map { ($_->{filename_effective} // '' => $_) } @$transfers;
    return map {
        my $t = $by_file{"$scratch/body-$_"} // {};
        {
            uri => $paths[$_],
            status => $t->{response_code} || 'none',
            version => $t->{http_version} // 'none',
            body => slurp("$scratch/body-$_"),
            exit => $t->{exitcode} // 'none',
            error => $t->{errormsg} // '',
            time => $t->{time_total},
            connects => $t->{num_connects},
        }
    } 0 .. $#paths;
}

# GET $path with curl, reading its body as it arrives (curl -N). Returns the body and, for
# each marker, the seconds from the start at which the body first contained it.
sub curl_stream {
    my ($server, $path, @markers) = @_;
    my $start = time;
    open my $in, '-|', 'curl', '-sS', '-k', '--http2', '-N', '--max-time', 20 * patience(), url($server, $path)
        or die "cannot run curl: $!";
    my ($body, %at) = ('');
    while (sysread $in, my $buf, 65536) {
        $body .= $buf;
        for my $marker (@markers) {
            $at{$marker} //= time - $start if index($body, $marker) >= 0;
        }
    }
    close $in;
    return ($body, \%at);
}

# --- the frame-level client -------------------------------------------------------------

package Test::Gateway::H2::Client;

use Fcntl qw(F_GETFL F_SETFL O_NONBLOCK);
use IO::Select ();
use List::Util qw(min);
use POSIX ();
use Time::HiRes qw(time);
use Test::Gateway::Server qw(patience);

use constant {
    DATA => 0, HEADERS => 1, RST_STREAM => 3, SETTINGS => 4, PING => 6, GOAWAY => 7,
    WINDOW_UPDATE => 8, CONTINUATION => 9,
    END_STREAM => 0x1, ACK => 0x1, END_HEADERS => 0x4, PADDED => 0x8, PRIORITY => 0x20,
    CANCEL => 0x8,
};

# The statuses of HPACK's static table.
my %static_status = (8 => 200, 9 => 204, 10 => 206, 11 => 304, 12 => 400, 13 => 404, 14 => 500);

# Opens a connection to $server: TLS with ALPN h2, the connection preface, and its SETTINGS
# (push off; window: the initial window of each stream, default 65535), then waits for
# nginx's SETTINGS. The connection's own window is opened wide at once and kept so: the
# streams' windows are what a test holds back. With manual_window => 1, a stream's window
# is opened only by window_update, else as its data arrives.
sub new {
    my ($class, $server, %o) = @_;
    # A write to an openssl that exited must fail, not kill the test.
    $SIG{PIPE} = 'IGNORE';
    pipe(my $to_read, my $to_write) or die "pipe: $!";
    pipe(my $from_read, my $from_write) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDIN, '<&', $to_read;
        open STDOUT, '>&', $from_write;
        open STDERR, '>', '/dev/null';
        { exec 'openssl', 's_client', '-quiet', '-alpn', 'h2', '-servername', 'localhost',
            '-connect', "127.0.0.1:$server->{port}" }
        POSIX::_exit(127);
    }
    close $to_read;
    close $from_write;
    binmode $_ for $to_write, $from_read;
    # Writes must not block while openssl waits for us to read what nginx sent.
    fcntl($to_write, F_SETFL, fcntl($to_write, F_GETFL, 0) | O_NONBLOCK) or die "fcntl: $!";
    my $self = bless {
        pid => $pid, in => $from_read, out => $to_write, select => IO::Select->new($from_read),
        buf => '', streams => {}, next_id => 1, manual => $o{manual_window},
        window => $o{window} // 65535,
        # What nginx lets us send: its connection window, and each stream's initial one.
        send_window => 65535, stream_send_window => 65535, max_frame => 16384,
    }, $class;
    $self->write_raw("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    $self->frame(SETTINGS, 0, 0, pack('nN', 2, 0) . pack('nN', 4, $self->{window}));
    $self->frame(WINDOW_UPDATE, 0, 0, pack('N', 0x40000000));
    $self->pump(10 * patience(), sub { $self->{settings} });
    die "no SETTINGS from nginx: no HTTP/2 (ALPN h2) on this port, or no TLS\n" unless $self->{settings};
    return $self;
}

sub write_raw {
    my ($self, $bytes) = @_;
    my $deadline = time + 10 * patience();
    while (length $bytes) {
        die "the connection is closed\n" if $self->{gone};
        my $n = syswrite $self->{out}, $bytes;
        if (defined $n) {
            substr($bytes, 0, $n) = '';
            next;
        }
        die "write to openssl: $!\n" unless $!{EAGAIN};
        die "openssl took nothing for 10 s\n" if time > $deadline;
        # openssl may be waiting for us to read what nginx sent.
        $self->pump(0.01);
    }
}

sub frame {
    my ($self, $type, $flags, $stream, $payload) = @_;
    # Closing: what comes meanwhile is read, not answered.
    return if $self->{closing};
    $self->write_raw(substr(pack('N', length $payload), 1) . pack('CCN', $type, $flags, $stream) . $payload);
}

sub hpack_int {
    my ($n, $bits, $first) = @_;
    my $max = (1 << $bits) - 1;
    return chr($first | $n) if $n < $max;
    my $out = chr($first | $max);
    $n -= $max;
    while ($n >= 128) {
        $out .= chr(($n & 127) | 128);
        $n >>= 7;
    }
    return $out . chr($n);
}

sub hpack_literal {
    my ($name, $value) = @_;
    return "\x00" . hpack_int(length $name, 7, 0) . $name . hpack_int(length $value, 7, 0) . $value;
}

# Reads an HPACK integer of a $bits-bit prefix at $$pos of $block.
sub hpack_read_int {
    my ($block, $pos, $bits) = @_;
    my $max = (1 << $bits) - 1;
    my $n = ord(substr $block, $$pos++, 1) & $max;
    return $n if $n < $max;
    my $shift = 0;
    while ($$pos < length $block) {
        my $byte = ord substr $block, $$pos++, 1;
        $n += ($byte & 127) << $shift;
        $shift += 7;
        last unless $byte & 128;
    }
    return $n;
}

# The :status of a response's header block: its first field.
sub decode_status {
    my $block = shift;
    return 'empty' unless length $block;
    my $first = ord $block;
    my $pos = 0;
    if ($first & 0x80) {
        return $static_status{hpack_read_int($block, \$pos, 7)} // 'undecoded';
    }
    my $index = ($first & 0xc0) == 0x40 ? hpack_read_int($block, \$pos, 6)
              : ($first & 0xe0) == 0x00 || ($first & 0xf0) == 0x10 ? hpack_read_int($block, \$pos, 4)
              : -1;
    return 'undecoded' unless $index == 8 && !(ord(substr $block, $pos, 1) & 0x80);
    my $length = hpack_read_int($block, \$pos, 7);
    return substr $block, $pos, $length;
}

# Opens a stream: $method $path, with a body if $o{body} is defined (with its
# Content-Length unless length => 0; sent at once unless hold => 1, see send_body).
# Returns the stream's id; stream($id) tells what came on it.
sub request {
    my ($self, $method, $path, %o) = @_;
    my $id = $self->{next_id};
    $self->{next_id} += 2;
    my @fields = ([':method', $method], [':scheme', 'https'], [':authority', 'localhost'], [':path', $path]);
    push @fields, ['content-length', length $o{body}] if defined $o{body} && ($o{length} // 1);
    my $s = $self->{streams}{$id} = {
        id => $id, path => $path, body => '', bytes => 0, chunks => [], opened => time,
        send_window => $self->{stream_send_window},
    };
    my $block = join '', map { hpack_literal(@$_) } @fields;
    $self->frame(HEADERS, END_HEADERS | (defined $o{body} ? 0 : END_STREAM), $id, $block);
    $self->send_body($id, $o{body}, %o) if defined $o{body} && !$o{hold};
    return $id;
}

# Sends $data on stream $id in DATA frames of at most $o{piece} bytes (and what nginx's
# windows allow), pumping $o{pause} seconds between them, the last with END_STREAM unless
# end => 0.
sub send_body {
    my ($self, $id, $data, %o) = @_;
    my $s = $self->{streams}{$id};
    my $piece = min($o{piece} // 16384, $self->{max_frame});
    my $at = 0;
    while ($at < length $data) {
        my $open = sub { $self->{send_window} > 0 && $s->{send_window} > 0 };
        $self->pump(10 * patience(), $open) unless $open->();
        die "nginx opened no window for the body of stream $id in 10 s\n" unless $open->();
        my $n = min($piece, length($data) - $at, $self->{send_window}, $s->{send_window});
        my $last = $at + $n >= length $data && ($o{end} // 1);
        $self->frame(DATA, $last ? END_STREAM : 0, $id, substr $data, $at, $n);
        $at += $n;
        $self->{send_window} -= $n;
        $s->{send_window} -= $n;
        $self->pump($o{pause} // 0);
    }
    $self->frame(DATA, END_STREAM, $id, '') if !length $data && ($o{end} // 1);
}

sub window_update {
    my ($self, $id, $n) = @_;
    $self->frame(WINDOW_UPDATE, 0, $id, pack('N', $n));
}

# RST_STREAM on stream $id (CANCEL, as a browser that navigates away).
sub reset {
    my ($self, $id, $code) = @_;
    $self->frame(RST_STREAM, 0, $id, pack('N', $code // CANCEL));
    $self->{streams}{$id}{reset_sent} = time;
}

sub stream {
    my ($self, $id) = @_;
    return $self->{streams}{$id};
}

# Reads and handles frames for up to $secs (0: what has come so far), or until $until->()
# holds or nginx closes the connection. Returns whether $until held (true without one).
sub pump {
    my ($self, $secs, $until) = @_;
    my $deadline = time + $secs;
    while (1) {
        return 1 if $until && $until->();
        return !$until if $self->{gone};
        my $left = $deadline - time;
        if ($self->{select}->can_read($left > 0 ? $left : 0)) {
            my $n = sysread $self->{in}, my $buf, 65536;
            if (!$n) {
                $self->{gone} = time;
                next;
            }
            $self->{buf} .= $buf;
            $self->handle_frames;
        }
        return $until ? $until->() : 1 if time >= $deadline;
    }
}

sub handle_frames {
    my $self = shift;
    while (length $self->{buf} >= 9) {
        my $length = unpack 'N', "\0" . substr $self->{buf}, 0, 3;
        last if length $self->{buf} < 9 + $length;
        my ($type, $flags, $id) = unpack 'CCN', substr $self->{buf}, 3, 6;
        $id &= 0x7fffffff;
        my $payload = substr $self->{buf}, 9, $length;
        substr($self->{buf}, 0, 9 + $length) = '';
        my $s = $self->{streams}{$id};
        if ($type == DATA) {
            my $data = $payload;
            if ($flags & PADDED) {
                my $pad = ord $data;
                $data = substr $data, 1, length($data) - 1 - $pad;
            }
            if ($s) {
                $s->{body} .= $data;
                $s->{bytes} += length $data;
                push @{ $s->{chunks} }, [time - $s->{opened}, length $data];
                $s->{ended} = time if $flags & END_STREAM;
            }
            # The connection's window is kept open; a stream's unless the test holds it.
            if ($length) {
                $self->window_update(0, $length);
                $self->window_update($id, $length) if $s && !$self->{manual} && !$s->{ended} && !$s->{reset_sent};
            }
        } elsif ($type == HEADERS) {
            my $block = $payload;
            my $pad = 0;
            if ($flags & PADDED) {
                $pad = ord $block;
                $block = substr $block, 1;
            }
            $block = substr $block, 5 if $flags & PRIORITY;
            $block = substr $block, 0, length($block) - $pad;
            if ($s) {
                if (defined $s->{status}) {
                    $s->{trailers} = 1;
                } else {
                    $s->{status} = decode_status($block);
                }
                $s->{ended} = time if $flags & END_STREAM;
            }
        } elsif ($type == RST_STREAM) {
            if ($s) {
                $s->{reset} = unpack 'N', $payload;
                $s->{ended} //= time;
            }
        } elsif ($type == SETTINGS) {
            next if $flags & ACK;
            for (my $at = 0; $at + 6 <= length $payload; $at += 6) {
                my ($key, $value) = unpack 'nN', substr $payload, $at, 6;
                if ($key == 4) {
                    my $delta = $value - $self->{stream_send_window};
                    $self->{stream_send_window} = $value;
                    $_->{send_window} += $delta for values %{ $self->{streams} };
                } elsif ($key == 5) {
                    $self->{max_frame} = $value;
                }
            }
            $self->frame(SETTINGS, ACK, 0, '');
            $self->{settings} = 1;
        } elsif ($type == PING) {
            $self->frame(PING, ACK, 0, $payload) unless $flags & ACK;
        } elsif ($type == GOAWAY) {
            @{ $self->{goaway} = {} }{qw(last error)} = unpack 'NN', $payload;
        } elsif ($type == WINDOW_UPDATE) {
            my $increment = unpack('N', $payload) & 0x7fffffff;
            if ($id == 0) {
                $self->{send_window} += $increment;
            } elsif ($s) {
                $s->{send_window} += $increment;
            }
        }
    }
}

# Whether stream $id has ended: END_STREAM or RST_STREAM from nginx.
sub ended {
    my ($self, $id) = @_;
    return defined $self->{streams}{$id}{ended};
}

# Drops the connection: openssl is killed, so the kernel closes the socket, with an RST if
# what nginx sent was not all read.
sub drop {
    my $self = shift;
    return unless $self->{pid};
    kill KILL => $self->{pid};
    waitpid $self->{pid}, 0;
    delete $self->{pid};
    CORE::close $self->{in};
    CORE::close $self->{out};
    $self->{gone} //= time;
}

# Closes the connection in order: GOAWAY, a moment for what nginx still sends, then the
# socket.
sub close_connection {
    my $self = shift;
    return unless $self->{pid};
    eval { $self->frame(GOAWAY, 0, 0, pack('NN', 0, 0)) };
    $self->{closing} = 1;
    # nginx closes the connection once its streams are done (it may send more meanwhile).
    $self->pump(0.2 * patience(), sub { $self->{gone} });
    $self->drop;
}

sub DESTROY {
    my $self = shift;
    local ($?, $@);
    $self->drop;
}

1;
