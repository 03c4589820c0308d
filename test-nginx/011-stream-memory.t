# A stream is pulled only as fast as the client reads: a 256 MiB stream read by a slow
# client must arrive whole and right, while the worker's resident memory stays within
# 64 MiB of what it was idle. Without back-pressure the worker would hold most of the
# stream in memory instead.
#
# The same holds for a stream that waits for its app between chunks: a 1 GiB stream from
# the deferred fixture, which answers STREAM_PENDING whenever its next chunk is not ready
# and wakes the call from a thread of its own (ABI 1.1 Host::wake), read by the same slow
# client, arrives whole and right within the same 64 MiB, and its response is released
# once the download is over. A wake must resume pulling only as far as the client
# drains, not make the worker pull ahead of it.
#
# Uses the Test::Nginx environment (TEST_NGINX_BINARY, TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_APPS) but starts its own nginx, with a master process and one worker so
# the worker's pid is known (/pid) and its memory can be read from /proc.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use IO::Select ();
use POSIX ();
use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_RCVBUF inet_aton pack_sockaddr_in);
use Time::HiRes qw(sleep time);

my $nginx = $ENV{TEST_NGINX_BINARY} || 'nginx';
my $apps = $ENV{TEST_NGINX_APPS} or plan skip_all => 'TEST_NGINX_APPS is not set';
my @modules = split ' ', $ENV{TEST_NGINX_LOAD_MODULES} || '';
plan skip_all => 'needs /proc' unless -r '/proc/self/status';

my $SIZE = 256 * 1024 * 1024;
my $DEFERRED_SIZE = 1024 * 1024 * 1024;    # 16384 chunks of 64 KiB
my $READ = 64 * 1024;         # the client reads this much, then pauses
my $PAUSE = 0.001;            # seconds
my $RCVBUF = 16 * 1024;       # the client's socket receive buffer
my $HEADROOM = 64 * 1024;     # KiB the worker may grow by while streaming

# What a body must be. Both apps send letters in chunks of 64 KiB, each chunk running
# through the alphabet from a letter of its own: `first` gives chunk k's first letter
# (0 for a), from which expected() makes the bytes at any offset; `byte` is the documented
# formula for the byte at one offset, written out on its own for the spot checks.
my $letters = join('', 'a' .. 'z') x (int(65536 / 26) + 2);    # any 64 KiB, from any letter
# /s/bytes (libstream) sends "abc..z" over and over, restarting with every 64 KiB chunk.
my %STREAM_PATTERN = (
    chunk => 65536,
    first => sub { 0 },
    byte => sub { chr(97 + ($_[0] % 65536) % 26) },
);
# /d/stream?size=65536 (libdeferred): chunk k's byte i is the letter (k + i) % 26.
my %DEFERRED_PATTERN = (
    chunk => 65536,
    first => sub { $_[0] % 26 },
    byte => sub { chr(97 + (int($_[0] / 65536) + $_[0] % 65536) % 26) },
);

sub expected {    # the $length bytes that $pattern has at $offset
    my ($pattern, $offset, $length) = @_;
    my $want = '';
    while ($length > 0) {
        my ($k, $i) = (int($offset / $pattern->{chunk}), $offset % $pattern->{chunk});
        my $n = $pattern->{chunk} - $i;
        $n = $length if $length < $n;
        $want .= substr $letters, ($pattern->{first}->($k) + $i) % 26, $n;
        $offset += $n;
        $length -= $n;
    }
    return $want;
}

# --- our own nginx -------------------------------------------------------------

my $prefix = tempdir(CLEANUP => 1);
mkdir "$prefix/$_" for qw(conf logs);
my $port = do {
    socket my $probe, PF_INET, SOCK_STREAM, 0 or die "socket: $!";
    bind $probe, pack_sockaddr_in(0, inet_aton('127.0.0.1')) or die "bind: $!";
    (Socket::unpack_sockaddr_in(getsockname $probe))[0];
};
my $conf = join '', map { "load_module $_;\n" } @modules;
$conf .= <<"CONF";
daemon on;
master_process on;
worker_processes 1;
error_log logs/error.log info;
pid logs/nginx.pid;
events {
    worker_connections 64;
}
http {
    access_log off;
    client_body_temp_path $prefix/body;
    proxy_temp_path $prefix/proxy;
    fastcgi_temp_path $prefix/fastcgi;
    uwsgi_temp_path $prefix/uwsgi;
    scgi_temp_path $prefix/scgi;
    server {
        listen 127.0.0.1:$port;
        location /s/ {
            gateway_app $apps/libstream.so;
        }
        location /d/ {
            gateway_app $apps/libdeferred.so;
        }
        location = /pid {
            return 200 "\$pid\\n";
        }
    }
}
CONF
open my $fh, '>', "$prefix/conf/nginx.conf" or die "cannot write nginx.conf: $!";
print $fh $conf;
close $fh;

my $master;
sub stop_nginx {
    return unless $master && kill 0, $master;
    kill QUIT => $master;
    my $deadline = time + 10;
    sleep 0.05 while kill(0, $master) && time < $deadline && !reaped($master);
    if (kill 0, $master) {
        kill KILL => -$master, $master;
    }
    undef $master;
}
sub reaped {    # a daemon's zombie may linger; /proc tells
    my $pid = shift;
    open my $stat, '<', "/proc/$pid/stat" or return 1;
    return (<$stat> // '') =~ /\)\s+Z/;
}
END { local $?; stop_nginx() }
$SIG{$_} = sub { stop_nginx(); exit 1 } for qw(INT TERM HUP);

system($nginx, '-p', "$prefix/", '-c', 'conf/nginx.conf') == 0
    or BAIL_OUT("nginx did not start: " . slurp("$prefix/logs/error.log"));
for (1 .. 200) {
    last if ($master) = slurp("$prefix/logs/nginx.pid") =~ /^(\d+)/;
    sleep 0.05;
}
$master or BAIL_OUT('nginx wrote no pid file');

sub slurp {
    open my $in, '<', shift or return '';
    local $/;
    return <$in> // '';
}

# --- a small HTTP client ---------------------------------------------------------

sub connect_nginx {
    my $rcvbuf = shift;
    socket my $sock, PF_INET, SOCK_STREAM, 0 or die "socket: $!";
    setsockopt $sock, SOL_SOCKET, SO_RCVBUF, $rcvbuf or die "SO_RCVBUF: $!" if $rcvbuf;
    for (1 .. 100) {
        return $sock if connect $sock, pack_sockaddr_in($port, inet_aton('127.0.0.1'));
        sleep 0.05;
    }
    die "cannot connect to nginx on port $port: $!";
}

sub get {
    my $uri = shift;
    my $sock = connect_nginx();
    syswrite $sock, "GET $uri HTTP/1.0\r\nHost: localhost\r\n\r\n";
    my $raw = '';
    my $select = IO::Select->new($sock);
    while ($select->can_read(30)) {
        my $n = sysread $sock, my $buf, 1 << 20;
        last unless $n;
        $raw .= $buf;
    }
    close $sock;
    return $raw =~ /\A(.*?)\r\n\r\n(.*)\z/s ? ($2, $1) : ('', $raw);
}

sub rss_kib {
    my $pid = shift;
    return slurp("/proc/$pid/status") =~ /^VmRSS:\s+(\d+) kB/m ? $1 : undef;
}

# Reads GET $uri with $version slowly and checks every byte against $pattern, while
# sampling the worker's VmRSS; $size is the body's expected length, for the spot checks.
# Returns what it saw.
sub slow_download {
    my ($uri, $version, $pattern, $size, $worker) = @_;
    my $sock = connect_nginx($RCVBUF);
    syswrite $sock, "GET $uri HTTP/$version\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    my $select = IO::Select->new($sock);
    my %seen = (body => 0, max_rss => 0, samples => 0, eof => 0, last_chunk => 0,
                bad_at => undef, start => time, spots => {});
    my ($buf, $head, $chunked, $left, $state) = ('', undef, 0, 0, 'size');
    my $read_since_pause = 0;
    my $iterations = 0;

    my $take_body = sub {    # checks $piece, the body's next bytes
        my $piece = shift;
        for (my $at = 0; $at < length $piece; $at += 65536) {
            my $part = substr $piece, $at, 65536;
            my $offset = $seen{body} + $at;
            if (!defined $seen{bad_at}
                && $part ne expected($pattern, $offset, length $part)) {
                my $i = 0;
                $i++ while $i < length $part
                    && substr($part, $i, 1) eq $pattern->{byte}->($offset + $i);
                $seen{bad_at} = $offset + $i;
            }
        }
        for my $spot (0, 25, 65535, 65536, 65537, 1 << 20, $size / 2 + 12345, $size - 1) {
            $seen{spots}{$spot} = substr $piece, $spot - $seen{body}, 1
                if $spot >= $seen{body} && $spot < $seen{body} + length $piece;
        }
        $seen{body} += length $piece;
    };

    while (1) {
        if (++$iterations % 16 == 0) {
            my $rss = rss_kib($worker) // 0;
            $seen{max_rss} = $rss if $rss > $seen{max_rss};
            $seen{samples}++;
        }
        last unless $select->can_read(30);
        my $data;
        my $n = sysread $sock, $data, $READ;
        if (!$n) {
            $seen{eof} = defined $n;
            last;
        }
        $read_since_pause += $n;
        if ($read_since_pause >= $READ) {
            $read_since_pause = 0;
            sleep $PAUSE;
        }
        $buf .= $data;

        if (!defined $head) {
            next unless $buf =~ s/\A(.*?\r\n)\r\n//s;
            $head = $1;
            $chunked = $head =~ /\r\nTransfer-Encoding: chunked\r\n/i;
        }
        if (!$chunked) {
            $take_body->($buf);
            $buf = '';
            next;
        }
        while (1) {    # de-chunk what has arrived
            if ($state eq 'size') {
                last unless $buf =~ s/\A([0-9A-Fa-f]+)[^\r\n]*\r\n//;
                $left = hex $1;
                if ($left == 0) {
                    $seen{last_chunk} = 1;
                    $state = 'done';
                    last;
                }
                $state = 'data';
            }
            if ($state eq 'data') {
                my $take = $left < length $buf ? $left : length $buf;
                last unless $take;
                $take_body->(substr $buf, 0, $take, '');
                $left -= $take;
                $state = 'crlf' unless $left;
            }
            if ($state eq 'crlf') {
                last if length $buf < 2;
                if (substr($buf, 0, 2, '') ne "\r\n") {
                    $seen{bad_chunking} = 1;
                    $state = 'done';
                }
                $state = 'size' if $state eq 'crlf';
            }
            last if $state eq 'done';
        }
    }
    close $sock;
    $seen{head} = $head // '';
    $seen{seconds} = time - $seen{start};
    my $rss = rss_kib($worker) // 0;
    $seen{max_rss} = $rss if $rss > $seen{max_rss};
    return \%seen;
}

# --- the test -----------------------------------------------------------------

my ($pid_body) = get('/pid');
my ($worker) = $pid_body =~ /^(\d+)$/m;
ok($worker && rss_kib($worker), "the worker ($pid_body) and its VmRSS are readable")
    or BAIL_OUT('no worker pid: ' . slurp("$prefix/logs/error.log"));

# warm up: the app library loaded and used, a stream's buffers allocated once
my ($warm) = get('/s/bytes?size=4194304');
is(length $warm, 4194304, 'warm-up stream received');
my ($warm_deferred) = get('/d/stream?chunks=64&size=65536&wake_ms=0');
is(length $warm_deferred, 4194304, 'warm-up deferred stream received');
sleep 0.2;
my $idle = rss_kib($worker);
diag("worker $worker idle VmRSS after the warm-up: $idle KiB");

my @cases = (
    { what => 'HTTP/1.1, chunked', version => '1.1', framing => 'chunked',
      uri => "/s/bytes?size=$SIZE", size => $SIZE, pattern => \%STREAM_PATTERN },
    { what => 'HTTP/1.0, close-delimited', version => '1.0', framing => 'close',
      uri => "/s/bytes?size=$SIZE", size => $SIZE, pattern => \%STREAM_PATTERN },
    { what => 'deferred, HTTP/1.1, Content-Length', version => '1.1', framing => 'length',
      uri => '/d/stream?chunks=' . $DEFERRED_SIZE / 65536 . '&size=65536&wake_ms=0',
      size => $DEFERRED_SIZE, pattern => \%DEFERRED_PATTERN },
);
for my $case (@cases) {
    my ($what, $size, $pattern) = @$case{qw(what size pattern)};
    my $seen = slow_download($case->{uri}, $case->{version}, $pattern, $size, $worker);
    diag(sprintf '%s: %d bytes in %.1f s (%.1f MiB/s); VmRSS idle %d KiB, max %d KiB '
        . '(+%d KiB) over %d samples', $what, $seen->{body}, $seen->{seconds},
        $seen->{body} / 1048576 / ($seen->{seconds} || 1), $idle, $seen->{max_rss},
        $seen->{max_rss} - $idle, $seen->{samples});
    like($seen->{head}, qr{\AHTTP/1\.1 200 OK\r\n}, "$what: status 200");
    if ($case->{framing} eq 'chunked') {
        like($seen->{head}, qr{\r\nTransfer-Encoding: chunked\r\n}i, "$what: chunked");
        ok($seen->{last_chunk} && !$seen->{bad_chunking}, "$what: well-formed chunks to the last one");
    } elsif ($case->{framing} eq 'length') {
        like($seen->{head}, qr{\r\nContent-Length: $size\r\n}i, "$what: Content-Length $size");
        unlike($seen->{head}, qr{\r\nTransfer-Encoding:}i, "$what: not chunked");
    } else {
        unlike($seen->{head}, qr{\r\n(?:Transfer-Encoding|Content-Length):}i,
               "$what: neither chunked nor a length");
        ok($seen->{eof}, "$what: ends with the connection");
    }
    is($seen->{body}, $size, "$what: all $size bytes received");
    ok(!defined $seen->{bad_at}, "$what: every byte is the pattern's")
        or diag("first wrong byte at offset $seen->{bad_at}");
    for my $spot (sort { $a <=> $b } keys %{ $seen->{spots} }) {
        is($seen->{spots}{$spot}, $pattern->{byte}->($spot), "$what: the byte at $spot");
    }
    cmp_ok($seen->{samples}, '>=', 100, "$what: VmRSS sampled throughout");
    cmp_ok($seen->{max_rss}, '<', $idle + $HEADROOM,
           "$what: the worker's VmRSS stays below idle + 64 MiB");
}

my ($after) = get('/pid');
is($after, $pid_body, 'the same worker served everything');
my ($dropped) = get('/s/dropped');
is($dropped, "3\n", 'the warm-up and both slow streams were dropped when they ended');
my $stats = '';
for (1 .. 40) {    # the release may trail the last byte a little
    ($stats) = get('/d/stats');
    last if $stats =~ /^responded=(\d+) released=\1 pending=0$/m;
    sleep 0.05;
}
is($stats, "responded=2 released=2 pending=0\n",
   'both deferred streams were released when they ended, and no call is pending');

stop_nginx();
my @bad = grep { /\[(?:alert|crit|emerg|error)\]/ } split /^/, slurp("$prefix/logs/error.log");
is(scalar @bad, 0, 'no [error], [crit] or [alert] in the error log') or diag(@bad);

done_testing;
