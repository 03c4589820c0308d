# Proves that our Test::Nginx::Socket can fail: writes small test files
# that must fail (and a few that must pass), runs each in its own perl
# process against a real nginx, and checks the exit status, the reported
# failure, and that no nginx is left running.
#
#   TEST_NGINX_BINARY=/usr/sbin/nginx prove -I test-nginx/lib test-nginx/selftest/

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Temp qw(tempdir);
use FindBin;
use IO::Socket::INET;
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);

my $lib = abs_path("$FindBin::Bin/../lib");
my $tmp = tempdir(CLEANUP => 1);
my $servroot = "$tmp/servroot";

# A port of our own, so this can run next to other suites.
my $port = do {
    my $probe = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                      Proto => 'tcp', Listen => 1)
        or die "cannot find a free port: $!";
    $probe->sockport;
};

my $ok_block = <<'EOT';
=== TEST 1: fine
--- config
    location = /t { return 200 "fine\n"; }
--- request
GET /t
--- response_body
fine
EOT

my @must_fail = (
    {
        what => 'wrong response body',
        blocks => <<'EOT',
=== TEST 1: body
--- config
    location = /t { return 200 "hello world, this is a somewhat longer body\n"; }
--- request
GET /t
--- response_body
hello world, this is a somewhat longer bodY
EOT
        expect => [qr/^not ok \d+ - .*TEST 1: body - response_body - response is expected/m,
                   qr/strings begin to differ at char 43 \(line 1 column 43\)/],
    },
    {
        what => 'wrong status code',
        blocks => <<'EOT',
=== TEST 1: status
--- config
    location = /t { return 403; }
--- request
GET /t
--- response_body_like: Forbidden
EOT
        expect => [qr/^not ok \d+ - .*TEST 1: status - status code ok/m,
                   qr/last lines of .*error\.log before nginx was stopped/],
    },
    {
        what => 'connection closed without a response',
        blocks => <<'EOT',
=== TEST 1: dropped
--- config
    location = /t { return 444; }
--- request
GET /t
EOT
        expect => [qr/^not ok \d+ - .*TEST 1: dropped - status code ok/m],
    },
    {
        what => 'missing error_log line',
        blocks => <<'EOT',
=== TEST 1: error_log
--- config
    location = /t { return 200 "ok\n"; }
--- request
GET /t
--- response_body
ok
--- error_log
never logged
EOT
        expect => [qr/^not ok \d+ - .*pattern "never logged" should match a line in error\.log/m],
    },
    {
        what => 'unexpected no_error_log line',
        blocks => <<'EOT',
=== TEST 1: no_error_log
--- config
    location /missing { root html; }
--- request
GET /missing/file
--- error_code: 404
--- no_error_log
[error]
EOT
        expect => [qr/^not ok \d+ - .*pattern "\[error\]" should not match any line in error\.log but matches line/m],
    },
    {
        what => 'must_die on a valid config',
        blocks => <<'EOT',
=== TEST 1: survives
--- config
    location = /t { return 200; }
--- request
GET /t
--- must_die
EOT
        expect => [qr/^not ok \d+ - .*TEST 1: survives - die as expected/m],
    },
    {
        what => 'client timeout',
        blocks => <<'EOT',
=== TEST 1: hangs
--- config
    location = /t { return 200 "ok\n"; }
--- raw_request eval
"GET /t HTTP/1.1\r\nHost: localhost\r\n"
--- timeout: 0.3
--- response_body
ok
EOT
        expect => [qr/^not ok \d+ - ERROR: client socket timed out - .*TEST 1: hangs/m],
    },
    {
        what => 'wrong header value',
        blocks => <<'EOT',
=== TEST 1: header
--- config
    location = /t { add_header X-Foo bar; return 200 "ok\n"; }
--- request
GET /t
--- response_headers
X-Foo: baz
EOT
        expect => [qr/^not ok \d+ - .*TEST 1: header - header X-Foo ok/m],
    },
    {
        what => 'header that must be absent',
        blocks => <<'EOT',
=== TEST 1: absent
--- config
    location = /t { add_header X-Foo bar; return 200 "ok\n"; }
--- request
GET /t
--- response_headers
!X-Foo
EOT
        expect => [qr/^not ok \d+ - .*TEST 1: absent - header X-Foo not present in the raw headers/m],
    },
    {
        what => 'response_body_like mismatch',
        blocks => <<'EOT',
=== TEST 1: like
--- config
    location = /t { return 200 "abc\n"; }
--- request
GET /t
--- response_body_like: ^xyz
EOT
        expect => [qr/^not ok \d+ - .*TEST 1: like - response_body_like - response is expected/m],
    },
    {
        what => 'response body after response_body_filters',
        blocks => <<'EOT',
=== TEST 1: filtered
--- config
    location = /t { return 200 "hello\n"; }
--- request
GET /t
--- response_body_filters
uc
--- response_body
hello
EOT
        expect => [qr/^not ok \d+ - .*TEST 1: filtered - response_body - response is expected/m],
    },
    {
        what => 'second pipelined response',
        blocks => <<'EOT',
=== TEST 1: pipe
--- config
    location = /t { return 200 "n=$connection_requests\n"; }
--- pipelined_requests eval
["GET /t", "GET /t"]
--- response_body eval
["n=1\n", "n=1\n"]
EOT
        expect => [qr/^not ok \d+ - .*TEST 1: pipe - response_body - response is expected \(repeated req 0, req 1\)/m],
    },
    {
        what => 'nginx fails to start',
        blocks => <<'EOT',
=== TEST 1: bad
--- config
    location = /t { no_such_directive; }
--- request
GET /t
EOT
        expect => [qr/^not ok \d+ - .*TEST 1: bad - nginx failed to start/m,
                   qr/unknown directive "no_such_directive"/],
    },
    {
        what => 'TEST_NGINX_LOAD_MODULES with a missing module',
        blocks => $ok_block,
        env => { TEST_NGINX_LOAD_MODULES => "$tmp/no-such-module.so" },
        expect => [qr/^not ok \d+ - .*TEST 1: fine - nginx failed to start/m,
                   qr/\Q$tmp\E\/no-such-module\.so/],
    },
    {
        what => 'unknown $TEST_NGINX_ variable',
        blocks => <<'EOT',
=== TEST 1: env
--- config
    location = /t { return 200 "$TEST_NGINX_NO_SUCH_VAR"; }
--- request
GET /t
EOT
        expect => [qr/No environment TEST_NGINX_NO_SUCH_VAR defined/],
    },
    {
        # the master survives and respawns the worker: only the log tells
        what => 'worker crash under a master',
        setup => "master_on();\n",
        blocks => <<'EOT',
=== TEST 1: crash
--- config
    location = /t { return 200 "ok\n"; }
--- init
my $master = Test::Nginx::Util::pid_from_file();
opendir my $proc, '/proc' or die $!;
for my $pid (grep { /^\d+$/ } readdir $proc) {
    open my $stat, '<', "/proc/$pid/stat" or next;
    kill SEGV => $pid if <$stat> =~ /\)\s+\S+\s+(\d+)/ && $1 == $master;
}
# time for the master to log the crash and start a new worker, also on a loaded machine
sleep 2;
--- request
GET /t
--- response_body
ok
EOT
        expect => [qr/^not ok \d+ - .*TEST 1: crash - nginx process crashed: .*exited on signal 11/m],
    },
    {
        what => 'single-process nginx crash',
        blocks => <<'EOT',
=== TEST 1: crash
--- config
    location = /t { return 200 "ok\n"; }
--- init
kill SEGV => Test::Nginx::Util::pid_from_file();
sleep 0.2;
--- request
GET /t
EOT
        expect => [qr/^not ok \d+ - .*TEST 1: crash - nginx exited while the test was running/m],
    },
);

for my $case (@must_fail) {
    my ($status, $out) = run_test_file($case);
    isnt($status, 0, "$case->{what}: the test file fails")
        or diag($out);
    like($out, $_, "$case->{what}: the report says why") for @{ $case->{expect} };
    ok(nginx_is_down(), "$case->{what}: no nginx left running");
}

my @must_pass = (
    {
        what => 'a passing block',
        blocks => $ok_block,
        expect => [qr/^ok 2 - .*TEST 1: fine - response_body/m],
    },
    {
        what => 'ONLY runs just that block',
        blocks => <<"EOT",
=== TEST 1: broken, but not run
--- config
    location = /t { return 500; }
--- request
GET /t
--- response_body
never

$ok_block--- ONLY
EOT
        expect => [qr/I found ONLY/],
    },
    {
        what => 'no plan declared',
        use => 'use Test::Nginx::Socket;',
        blocks => $ok_block,
        expect => [qr/^1\.\.2$/m],
    },
    {
        what => 'plan with repeat_each',
        use => 'use Test::Nginx::Socket;',
        setup => <<'EOS',
repeat_each(2);
plan tests => repeat_each() * blocks() * 2;
EOS
        blocks => $ok_block . <<'EOT',
=== TEST 2: again
--- config
    location = /t { return 200 "again\n"; }
--- request
GET /t
--- response_body
again
EOT
        expect => [qr/^1\.\.8$/m],
    },
    {
        what => 'a block without config reuses the previous one',
        setup => "no_shuffle();\n",
        blocks => $ok_block . <<'EOT',
=== TEST 2: reuse
--- request
GET /t
--- response_body
fine
EOT
        expect => [qr/^ok 4 - .*TEST 2: reuse - response_body/m],
    },
);

for my $case (@must_pass) {
    my ($status, $out) = run_test_file($case);
    is($status, 0, "$case->{what}: the test file passes")
        or diag($out);
    like($out, $_, "$case->{what}: it ran as expected") for @{ $case->{expect} };
    ok(nginx_is_down(), "$case->{what}: no nginx left running");
}

# Interrupted while a request is in flight: the harness must still stop
# its nginx.
{
    my ($pid) = start_test_file({
        what => 'interrupted',
        blocks => <<'EOT',
=== TEST 1: slow
--- config
    location = /t { return 200 "ok\n"; }
--- raw_request eval
"GET /t HTTP/1.1\r\nHost: localhost\r\n"
--- timeout: 10
EOT
    });
    my $deadline = time + 10;
    sleep 0.05 until -s "$servroot/logs/nginx.pid" || time > $deadline;
    sleep 0.3;
    ok(!nginx_is_down(), 'interrupted: nginx was running');
    kill INT => $pid;
    waitpid $pid, 0;
    is($? & 127, 2, 'interrupted: the test file died of SIGINT');
    ok(nginx_is_down(), 'interrupted: no nginx left running');
}

done_testing();

# Write the test file for a case and start it in a child perl.  Returns
# the child's pid and, when $capture is set, a handle to read its stdout
# and stderr from (otherwise they are discarded).
sub start_test_file {
    my ($case, $capture) = @_;
    (my $base = $case->{what}) =~ s/\W+/_/g;
    my $file = "$tmp/$base.t";

    open my $out, '>', $file or die "$file: $!";
    print $out $case->{use} // "use Test::Nginx::Socket 'no_plan';", "\n",
               $case->{setup} // '', "run_tests();\n__DATA__\n\n", $case->{blocks};
    close $out;

    my $from;
    my $pid = $capture ? open($from, '-|') : fork;
    die "fork: $!" unless defined $pid;
    return ($pid, $from) if $pid;

    open STDOUT, '>', '/dev/null' unless $capture;
    open STDERR, '>&', \*STDOUT;
    # nginx inherits this directory: keep any core dump out of the tree
    chdir $tmp or POSIX::_exit(1);
    delete @ENV{qw(TEST_NGINX_SERVER_PORT TEST_NGINX_CLIENT_PORT
                   TEST_NGINX_RANDOMIZE TEST_NGINX_LOAD_MODULES)};
    %ENV = (%ENV, TEST_NGINX_PORT => $port, TEST_NGINX_SERVROOT => $servroot,
            %{ $case->{env} // {} });
    { exec $^X, "-I$lib", $file }
    POSIX::_exit(127);
}

# Run a case to the end; returns its wait status and its output.
sub run_test_file {
    my (undef, $from) = start_test_file(shift, 1);
    my $output = do { local $/; <$from> };
    close $from;
    return ($?, $output);
}

sub nginx_is_down {
    return !IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 1);
}
