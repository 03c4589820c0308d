package Test::Nginx::Util;

# Settings, server-root layout, nginx.conf generation and nginx process
# control for our implementation of the openresty Test::Nginx::Socket
# harness.  The HTTP client and the per-block checks live in
# Test::Nginx::Socket; this module knows nothing about Test::Base blocks
# beyond reading their sections.

use strict;
use warnings;

use Exporter 'import';
use File::Path qw(make_path remove_tree);
use File::Spec ();
use IO::Socket::INET ();
use POSIX ();
use Scalar::Util qw(looks_like_number);
use Time::HiRes qw(sleep time);

our @EXPORT = qw(
    add_block_preprocessor add_cleanup_handler bail_out block_timeout check_accum_error_log
    config_preamble env_to_nginx html_dir is_str log_level master_off
    master_on master_process_enabled no_long_string no_root_location
    no_shuffle parse_time repeat_each server_addr server_name server_port
    server_port_for_client server_root timeout worker_connections workers
    $ServerPort $ServerPortForClient $ServRoot $PidFile $ConfFile
    $ErrLogFile $AccLogFile $HtmlDir $NginxVersion $NginxBinary
);

# --- settings (environment variables, then the functions below) ---------

our $Verbose             = $ENV{TEST_NGINX_VERBOSE};
our $NginxBinary         = $ENV{TEST_NGINX_BINARY} || 'nginx';
our $Timeout             = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $TestNginxSleep      = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $LogLevel            = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcess       = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $NoShuffle           = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $CheckAccumErrLog    = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $LoadModules         = $ENV{TEST_NGINX_LOAD_MODULES} // '';
our $ServerAddr          = '127.0.0.1';    # where the client connects
our $ServerName          = 'localhost';
our $ServerPort          = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
our $ServerPortForClient = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort;
our $RepeatEach          = 1;
our $Workers             = 1;
our $WorkerConnections   = 64;
our $NoRootLocation      = 0;
our $NoLongString        = 0;
our $ConfigPreamble      = '';
our @EnvToNginx;
our @BlockPreprocessors;
our @CleanupHandlers;

# The generated server only ever listens on the loopback interface.
my $ListenAddr = '127.0.0.1';

# How long nginx may take to daemonize and come up before we give up.
my $StartupTimeout = 10;

# --- valgrind mode --------------------------------------------------------
#
# TEST_NGINX_USE_VALGRIND=1 (as in the openresty harness) runs every nginx of the suite
# under valgrind's memcheck, in the foreground with no master process (daemon off,
# master_process off: valgrind then sees the process that serves the requests), and fails
# a block whose valgrind report has an error: an invalid read or write, a use of
# uninitialised memory, a bad free, or a definitely lost block. Another non-numeric value
# replaces the default memcheck options below. Suppressions come from
# TEST_NGINX_VALGRIND_SUPPRESSIONS (files separated by ":"), else from
# test-nginx/valgrind/valgrind.suppress and valgrind.suppress in the current directory.
# test-nginx/valgrind/nodlclose.c, built with cc and preloaded, keeps the module and the
# apps mapped at exit (see there why). With TEST_NGINX_VALGRIND_LOG_DIR each block's
# report is kept there. Timeouts grow (TEST_NGINX_TIMEOUT defaults to 30 s and a
# block's own timeout is multiplied by 10), as everything runs some 20 times slower.
our $UseValgrind = $ENV{TEST_NGINX_USE_VALGRIND};
our $ValgrindLogDir = $ENV{TEST_NGINX_VALGRIND_LOG_DIR};
our $ValgrindLog;
our %ValgrindTotals = (blocks => 0, errors => 0, definite => 0, suppressed => 0);
my $ValgrindChild;    # the foreground nginx we spawned, to reap it

my @DefaultValgrindOptions = qw(
    --tool=memcheck --leak-check=full --show-leak-kinds=definite
    --errors-for-leak-kinds=definite --num-callers=50 --error-limit=no
    --gen-suppressions=all --trace-children=no --child-silent-after-fork=yes
    --keep-debuginfo=yes
);

if ($UseValgrind) {
    $Timeout = $ENV{TEST_NGINX_TIMEOUT} || 30;
    $TestNginxSleep = $ENV{TEST_NGINX_SLEEP} || 0.1;
    $StartupTimeout = 120;
}

# A block's own timeout, scaled for valgrind.
sub block_timeout {
    my $t = parse_time(shift);
    return $t unless defined $t && $UseValgrind;
    return $t * 10;
}

# test-nginx/valgrind/, next to our lib/.
sub valgrind_dir {
    (my $here = File::Spec->rel2abs(__FILE__)) =~ s{/lib/Test/Nginx/Util\.pm\z}{};
    return "$here/valgrind";
}

sub valgrind_suppressions {
    return grep { length } split /:/, $ENV{TEST_NGINX_VALGRIND_SUPPRESSIONS}
        if defined $ENV{TEST_NGINX_VALGRIND_SUPPRESSIONS};
    return grep { -f } valgrind_dir() . '/valgrind.suppress',
        File::Spec->rel2abs('valgrind.suppress');
}

# The no-op dlclose() library, built once per run next to the server root.
my $NoDlclose;
sub no_dlclose_library {
    return $NoDlclose if defined $NoDlclose;
    my $source = valgrind_dir() . '/nodlclose.c';
    (my $out = $Test::Nginx::Util::ServRoot) =~ s{/+[^/]+/*\z}{};
    $out .= "/nodlclose-$$.so";
    system('cc', '-shared', '-fPIC', '-O2', '-o', $out, $source) == 0
        or bail_out("cannot build $source with cc (needed in valgrind mode)");
    return $NoDlclose = $out;
}
END { unlink $NoDlclose if defined $NoDlclose }

# The command that runs nginx for the current server root.
sub nginx_command {
    my @nginx = ($NginxBinary, '-p', "$Test::Nginx::Util::ServRoot/", '-c', $Test::Nginx::Util::ConfFile);
    return @nginx unless $UseValgrind;
    my @options = $UseValgrind =~ /^\d+$/ ? @DefaultValgrindOptions : split ' ', $UseValgrind;
    my %seen;
    return ('valgrind', @options,
        map({ "--suppressions=$_" } grep { !$seen{$_}++ } valgrind_suppressions()),
        "--log-file=$ValgrindLog", @nginx);
}

if ($ENV{TEST_NGINX_RANDOMIZE}) {
    $ServerPort = $ServerPortForClient = pick_free_port({})
        // die "Cannot find a free TCP port for TEST_NGINX_RANDOMIZE\n";
}

our $ServRoot = File::Spec->rel2abs(
      $ENV{TEST_NGINX_RANDOMIZE} ? "t/servroot_$ServerPort"
    : $ENV{TEST_NGINX_SERVROOT} || 't/servroot');
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;

our $LogDir     = "$ServRoot/logs";
our $ErrLogFile = "$LogDir/error.log";
our $AccLogFile = "$LogDir/access.log";
our $StderrFile = "$LogDir/nginx.stderr";
our $PidFile    = "$LogDir/nginx.pid";
$ValgrindLog    = "$LogDir/valgrind.log";
our $HtmlDir    = "$ServRoot/html";
our $ConfDir    = "$ServRoot/conf";
our $ConfFile   = "$ConfDir/nginx.conf";

our $NginxVersion;      # canonical number: 1.22.1 => 1.022001
our $NginxPid;          # the nginx (master) process we started, if running
our $ErrLogPos = 0;     # error.log offset already seen by the log checks

# Temp directories nginx would otherwise put at compiled-in (possibly
# absolute, e.g. Debian's /var/lib/nginx) paths.
my @TempPathDirectives = qw(client_body_temp_path proxy_temp_path
    fastcgi_temp_path uwsgi_temp_path scgi_temp_path);

# --- functions the test files call ---------------------------------------

sub repeat_each            { $RepeatEach = shift if @_; $RepeatEach }
sub workers                { $Workers = shift if @_; $Workers }
sub worker_connections     { $WorkerConnections = shift if @_; $WorkerConnections }
sub log_level              { $LogLevel = shift if @_; $LogLevel }
sub timeout                { $Timeout = shift if @_; $Timeout }
sub server_name            { $ServerName = shift if @_; $ServerName }
sub server_addr            { $ServerAddr = shift if @_; $ServerAddr }
sub server_port            { $ServerPort = shift if @_; $ServerPort }
sub server_port_for_client { $ServerPortForClient = shift if @_; $ServerPortForClient }
sub config_preamble        { $ConfigPreamble = shift }
sub master_on              { $MasterProcess = 'on' }
sub master_off             { $MasterProcess = 'off' }
sub no_shuffle             { $NoShuffle = 1 }
sub no_long_string         { $NoLongString = 1 }
sub no_root_location       { $NoRootLocation = 1 }
sub check_accum_error_log  { $CheckAccumErrLog = 1 }
sub html_dir               { $HtmlDir }
sub server_root            { $ServRoot }
sub add_block_preprocessor { unshift @BlockPreprocessors, shift }
sub add_cleanup_handler    { unshift @CleanupHandlers, shift }

sub master_process_enabled {
    return $MasterProcess unless @_;
    $MasterProcess = shift() ? 'on' : 'off';
}

sub env_to_nginx {
    die "env_to_nginx: no arguments specified\n" unless @_;
    for my $v (@_) {
        die "env_to_nginx: bad argument value: $v\n"
            if $v !~ /^[A-Za-z_]/ || $v =~ /\n/;
        push @EnvToNginx, $v;
    }
}

sub bail_out {
    cleanup();
    Test::More::BAIL_OUT(join '', @_);
}

# "50ms" => 0.05, "2s" => 2, "1.5" => 1.5
sub parse_time {
    my $t = shift;
    return undef unless defined $t;
    $t =~ s/^\s+|\s+$//g;
    return $1 / 1000 if $t =~ /^([\d.]+)ms$/;
    return $1 if $t =~ /^([\d.]+)s$/;
    return $t;
}

# String equality that reports where long strings start to differ (in the
# spirit of Test::LongString, which is not available here).
sub is_str {
    my ($got, $expected, $desc) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;

    return Test::More::like($got, $expected, $desc)
        if ref $expected && ref $expected eq 'Regexp';

    return Test::More::is($got, $expected, $desc)
        if $NoLongString || !defined $got || !defined $expected;

    return 1 if Test::More::ok($got eq $expected, $desc);
    Test::More::diag(describe_difference($got, $expected));
    return 0;
}

sub describe_difference {
    my ($got, $expected) = @_;

    my $max = length $got < length $expected ? length $got : length $expected;
    my $at = 0;
    $at++ while $at < $max && substr($got, $at, 1) eq substr($expected, $at, 1);

    my $before = substr $got, 0, $at;
    my $line = 1 + ($before =~ tr/\n//);
    my $column = $at - rindex($before, "\n");
    my $from = $at > 10 ? $at - 10 : 0;

    return sprintf qq{%12s: "%s"\n%12s: %d\n%12s: "%s"\n%12s: %d\n}
                 . qq{    strings begin to differ at char %d (line %d column %d)},
        'got', excerpt($got, $from), 'length', length $got,
        'expected', excerpt($expected, $from), 'length', length $expected,
        $at + 1, $line, $column;
}

sub excerpt {
    my ($s, $from) = @_;
    my $width = 60;
    my $part = substr $s, $from, $width;
    $part =~ s/([\\"])/\\$1/g;
    $part =~ s/\n/\\n/g;
    $part =~ s/\r/\\r/g;
    $part =~ s/\t/\\t/g;
    $part =~ s/([^\x20-\x7e])/sprintf '\\x{%x}', ord $1/ge;
    return ($from ? '...' : '') . $part
         . ($from + $width < length $s ? '...' : '');
}

# --- server root, user files, nginx.conf ----------------------------------

# Recreate the server root from scratch.  Only directories the harness (or
# nginx under it) creates are removed; anything else means
# TEST_NGINX_SERVROOT points somewhere it should not, so we refuse rather
# than delete someone's data.
sub setup_server_root {
    if (-d $ServRoot) {
        opendir my $dh, $ServRoot or bail_out("Cannot read $ServRoot: $!");
        my @entries = grep { !/^\.\.?$/ } readdir $dh;
        closedir $dh;

        my @foreign = grep { !/^(?:conf|html|logs)$/ && !/_(?:temp|cache)$/ }
                      @entries;
        bail_out("Refusing to clean $ServRoot: it contains @foreign, "
                 . "which the test harness did not create") if @foreign;

        remove_tree(map { "$ServRoot/$_" } @entries);
    }

    make_path($ConfDir, $LogDir, $HtmlDir);

    # the same default page the openresty harness serves from "location /"
    write_file("$HtmlDir/index.html",
        '<html><head><title>It works!</title></head><body>It works!</body></html>');
}

sub reset_logs {
    remove_tree($LogDir);
    make_path($LogDir);
}

# --- user_files: ">>> name [touch-date]" lines followed by the content, or
# (eval) an array of [name, content, date] triples.  Relative names go
# under html/.
sub write_user_files {
    my ($block, $rand_ports) = @_;
    my $name = $block->name;
    my $files = $block->user_files;
    return unless $files;

    if (!ref $files) {
        my @parsed;
        for my $line (split /^/, $files) {
            if ($line =~ /^>>> (\S+)(?:\s+(.+))?/) {
                push @parsed, [$1, '', $2];
            } elsif (@parsed) {
                $parsed[-1][1] .= $line;
            }
        }
        $files = \@parsed;
    } elsif (ref $files ne 'ARRAY') {
        bail_out("$name - --- user_files must be a string or an ARRAY, not ",
                 ref $files);
    }

    for my $file (@$files) {
        my ($fname, $body, $date) = @$file;
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        (my $dir = $path) =~ s{/[^/]*$}{};
        make_path($dir) unless -d $dir;
        write_file($path, expand_env_in_text($body // '', $name, $rand_ports));

        if ($date) {
            local $ENV{TZ} = 'GMT';
            system('touch', '-t', $date, $path) == 0
                or bail_out("$name - cannot set the time of $path to $date");
        }
    }
}

# Replace $TEST_NGINX_FOO with the environment variable's value.
# $TEST_NGINX_RAND_PORT_N becomes a free port, the same one for the same N
# within a block.
sub expand_env_in_text {
    my ($text, $name, $rand_ports) = @_;
    return undef unless defined $text;

    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        my $var = $1;
        if ($var =~ /^TEST_NGINX_RAND_PORT_\d+$/) {
            unless (defined $rand_ports->{$var}) {
                my %used = ($ServerPort => 1, map { $_ => 1 } values %$rand_ports);
                $rand_ports->{$var} = pick_free_port(\%used)
                    // bail_out("$name - Cannot find a free port for $var");
            }
            $rand_ports->{$var};
        } else {
            defined $ENV{$var}
                or bail_out("$name - No environment $var defined.");
            $ENV{$var};
        }
    }ge;

    return $text;
}

sub pick_free_port {
    my $used = shift;
    for (1 .. 1000) {
        my $port = 1985 + int rand(65535 - 1985);
        next if $used->{$port};
        my $probe = IO::Socket::INET->new(
            LocalAddr => $ListenAddr, LocalPort => $port, Proto => 'tcp');
        if ($probe) {
            close $probe;
            return $port;
        }
    }
    return undef;
}

sub write_config_file {
    my ($block, $config, $rand_ports) = @_;
    my $name = $block->name;

    my ($main_config, $http_config, $post_main_config) =
        map { expand_env_in_text($_ // '', $name, $rand_ports) }
            scalar $block->main_config, scalar $block->http_config,
            scalar $block->post_main_config;

    my $load_modules = join '', map { "load_module $_;\n" } grep { length }
        split /\s+/, expand_env_in_text($LoadModules, $name, $rand_ports);

    my $log_level = $block->log_level || $LogLevel;

    my $env = join '', map { /\s/ ? "env '$_';\n" : "env $_;\n" }
        qw(LD_PRELOAD LD_LIBRARY_PATH ASAN_OPTIONS), @EnvToNginx;

    # A test's own http_config may set these; nginx rejects duplicates.
    my $temp_paths = join '', map {
        (my $dir = $_) =~ s/_path$//;
        "    $_ $ServRoot/$dir;\n"
    } grep { $http_config !~ /\b$_\b/ } @TempPathDirectives;

    (my $server_name = $block->server_name // $ServerName) =~ s/(['\\])/\\$1/g;

    my $root_location = $NoRootLocation ? '' : <<"EOC";
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
EOC

    # Workers of a root master would otherwise run as "nobody" and could
    # not use the server root.
    my $user = $> == 0 ? "user root;\n" : '';

    # Under valgrind: one process in the foreground, the one valgrind watches.
    my ($daemon, $master) = $UseValgrind ? ('off', 'off') : ('on', $MasterProcess);

    my $conf = <<"EOC";
# generated by Test::Nginx::Socket for $name
$load_modules
worker_processes $Workers;
daemon $daemon;
master_process $master;
error_log $ErrLogFile $log_level;
pid $PidFile;
$env$user
$main_config

http {
    access_log $AccLogFile;
    default_type text/plain;
    keepalive_timeout 68;
$temp_paths
$http_config

    server {
        listen $ListenAddr:$ServerPort;
        server_name '$server_name';
        client_max_body_size 30M;

$ConfigPreamble
        # Begin test case config...
$config
        # End test case config.

$root_location    }
}

$post_main_config

events {
    accept_mutex off;
    worker_connections $WorkerConnections;
}
EOC

    write_file($ConfFile, $conf);
    warn "nginx.conf for $name:\n$conf" if $Verbose;
}

sub write_file {
    my ($path, $content) = @_;
    open my $out, '>', $path or bail_out("Cannot open $path for writing: $!");
    binmode $out;
    print $out $content;
    close $out or bail_out("Cannot write $path: $!");
}

sub read_lines {
    my $path = shift;
    open my $in, '<', $path or return [];
    return [<$in>];
}

# The last $n lines of a file, or of its first $size bytes.
sub tail_of {
    my ($path, $n, $size) = @_;
    open my $in, '<', $path or return '';
    my $text = do { local $/; <$in> } // '';
    $text = substr $text, 0, $size if defined $size;
    my @lines = split /^/, $text;
    return join '', @lines > $n ? @lines[-$n .. -1] : @lines;
}

# --- nginx processes -------------------------------------------------------

sub nginx_version {
    my $pid = open my $out, '-|';
    bail_out("fork() failed: $!") unless defined $pid;
    if (!$pid) {
        open STDERR, '>&', \*STDOUT;
        { exec { $NginxBinary } $NginxBinary, '-V' }
        print "cannot execute $NginxBinary: $!\n";
        POSIX::_exit(127);
    }
    my $text = do { local $/; <$out> } // '';
    close $out;
    bail_out("Failed to run \"$NginxBinary -V\" (set TEST_NGINX_BINARY?): $text")
        if $? != 0;

    $text =~ m{/(\d+)\.(\d+)\.(\d+)}
        or bail_out("Cannot parse the output of \"$NginxBinary -V\": $text");
    return canonical_version($1, $2, $3);
}

sub canonical_version { sprintf '%d.%03d%03d', @_ }

# Run nginx's command line (which forks the daemon and exits) and return
# its wait status, or undef if it did not exit in time.  stderr goes to
# $StderrFile.
sub launch_nginx {
    unlink $StderrFile;
    my $preload = $UseValgrind ? no_dlclose_library() : undef;
    unlink $ValgrindLog if $UseValgrind;
    my $pid = fork;
    bail_out("fork() failed: $!") unless defined $pid;
    if (!$pid) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', $StderrFile;
        $ENV{LD_PRELOAD} = join ' ', grep { defined && length } $preload, $ENV{LD_PRELOAD}
            if $UseValgrind;
        my @command = nginx_command();
        { exec { $command[0] } @command }
        print STDERR "cannot execute $command[0]: $!\n";
        POSIX::_exit(127);
    }

    my $deadline = time + $StartupTimeout;
    while (time < $deadline) {
        return $? if waitpid($pid, POSIX::WNOHANG()) == $pid;
        sleep 0.01;
    }
    kill KILL => $pid;
    waitpid $pid, 0;
    return undef;
}

# Start nginx for the current server root.  Returns undef on success or a
# message saying what went wrong.
sub start_nginx {
    return start_foreground_nginx() if $UseValgrind;
    my $status = launch_nginx();
    return "$NginxBinary did not return within ${StartupTimeout}s "
         . "(does the config say \"daemon off\"?)" unless defined $status;
    return "$NginxBinary exited with " . describe_status($status)
        if $status != 0;

    # Its listening sockets were opened before it daemonized, so once the
    # daemon is there the port accepts connections.  We still confirm it in
    # /proc/net/tcp (rather than by connecting, which would add lines to
    # the logs under test).
    $NginxPid = wait_for_pid_file()
        // return "nginx wrote no pid file to $PidFile";
    my $deadline = time + $StartupTimeout;
    until (port_listening($ServerPort)) {
        return "nginx exited right after starting" unless process_alive($NginxPid);
        return "nginx is not listening on port $ServerPort" if time > $deadline;
        sleep 0.01;
    }
    return undef;
}

# Start nginx in the foreground, as our child (valgrind mode).
sub start_foreground_nginx {
    unlink $StderrFile, $ValgrindLog;
    my $preload = no_dlclose_library();
    my $pid = fork;
    bail_out("fork() failed: $!") unless defined $pid;
    if (!$pid) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', $StderrFile;
        POSIX::setsid();
        $ENV{LD_PRELOAD} = join ' ', grep { defined && length }
            $preload, $ENV{LD_PRELOAD};
        my @command = nginx_command();
        { exec { $command[0] } @command }
        print STDERR "cannot execute $command[0]: $!\n";
        POSIX::_exit(127);
    }
    $ValgrindChild = $NginxPid = $pid;

    my $deadline = time + $StartupTimeout;
    until (port_listening($ServerPort) && defined pid_from_file()) {
        if (waitpid($pid, POSIX::WNOHANG()) == $pid) {
            undef $NginxPid;
            undef $ValgrindChild;
            return "nginx exited with " . describe_status($?);
        }
        return "nginx is not listening on port $ServerPort after ${StartupTimeout}s"
            if time > $deadline;
        sleep 0.05;
    }
    return undef;
}

# The valgrind report of the nginx that just exited: undef if there is none, else the
# error count, definitely lost bytes, suppressed errors and the report's text.
sub valgrind_report {
    return undef unless $UseValgrind && -f $ValgrindLog;
    open my $in, '<', $ValgrindLog or return undef;
    my $text = do { local $/; <$in> } // '';
    my %report = (text => $text, errors => undef, definite => 0, suppressed => 0);
    if ($text =~ /ERROR SUMMARY: ([\d,]+) errors? from [\d,]+ contexts? \(suppressed: ([\d,]+)/) {
        ($report{errors}, $report{suppressed}) = map { tr/,//dr } $1, $2;
    }
    $report{definite} = $1 =~ tr/,//dr if $text =~ /definitely lost: ([\d,]+) bytes/;
    return \%report;
}

# Stop the nginx we started: QUIT (graceful) unless told TERM (fast),
# then TERM, then KILL for the whole process group (the daemon is a
# session leader).  Returns 'gone' when it had already exited on its own,
# 'stopped' or 'killed' otherwise.
sub stop_nginx {
    my $signal = shift // 'QUIT';
    my $pid = $NginxPid // pid_from_file();
    undef $NginxPid;
    return 'gone' unless defined $pid && process_alive($pid);

    kill $signal => $pid;
    return 'stopped' if wait_for_exit($pid, $Timeout);

    if ($signal ne 'TERM') {
        warn "WARNING: nginx $pid did not quit within ${Timeout}s; sending TERM\n";
        kill TERM => $pid;
        return 'stopped' if wait_for_exit($pid, 1);
    }

    warn "WARNING: killing nginx $pid with SIGKILL\n";
    kill KILL => -$pid;
    kill KILL => $pid;
    wait_for_exit($pid, 1);
    unlink $PidFile;
    return 'killed';
}

sub wait_for_exit {
    my ($pid, $secs) = @_;
    my $deadline = time + $secs;
    my $reap = sub {
        return unless defined $ValgrindChild && $pid == $ValgrindChild;
        undef $ValgrindChild if waitpid($pid, POSIX::WNOHANG()) == $pid;
    };
    while (process_alive($pid)) {
        $reap->();
        return 0 if time > $deadline;
        sleep 0.01;
    }
    $reap->();
    return 1;
}

# The daemon writes its pid file right after forking.
sub wait_for_pid_file {
    my $deadline = time + $StartupTimeout;
    while (1) {
        my $pid = pid_from_file();
        return $pid if defined $pid || time > $deadline;
        sleep 0.01;
    }
}

sub pid_from_file {
    open my $in, '<', $PidFile or return undef;
    my $pid = <$in>;
    return defined $pid && $pid =~ /^(\d+)/ ? $1 : undef;
}

# The daemon is reparented to PID 1, which may never reap it: a dead
# nginx can linger as a zombie that kill(0) still reports.
sub process_alive {
    my $pid = shift;
    return 0 unless kill 0, $pid;
    open my $in, '<', "/proc/$pid/stat" or return 1;
    my $stat = <$in> // '';
    return $stat !~ /\)\s+Z/;
}

sub port_listening {
    my $port = shift;
    open my $in, '<', '/proc/net/tcp' or return 1;
    my $hex = sprintf ':%04X', $port;
    while (<$in>) {
        my (undef, undef, $local, undef, $state) = split /\s+/;
        return 1 if $state eq '0A' && $local =~ /\Q$hex\E$/;   # 0A = LISTEN
    }
    return 0;
}

sub describe_status {
    my $status = shift;
    return 'signal ' . ($status & 127) . ($status & 128 ? ' (core dumped)' : '')
        if $status & 127;
    return 'status ' . ($status >> 8);
}

# Stop a server left over by an earlier, interrupted run in this root.
sub stop_stale_nginx {
    my $pid = pid_from_file();
    return unless defined $pid && process_alive($pid);
    warn "WARNING: stopping nginx $pid left running in $ServRoot\n";
    $NginxPid = $pid;
    stop_nginx();
}

# --- logs -----------------------------------------------------------------

# Error log lines written since the previous call (for this block), or all
# of them with check_accum_error_log().
sub error_log_data {
    # let nginx finish writing what follows a response (log phase,
    # connection close) before we look
    sleep $TestNginxSleep * 3;
    open my $in, '<', $ErrLogFile or return [];
    seek $in, $ErrLogPos, 0 unless $CheckAccumErrLog;
    my @lines = <$in>;
    $ErrLogPos = tell $in unless $CheckAccumErrLog;
    return \@lines;
}

sub access_log_data {
    sleep $TestNginxSleep * 3;
    return read_lines($AccLogFile);
}

# Run the cleanup handlers and stop nginx; $signal as for stop_nginx().
sub cleanup {
    my $signal = shift;
    $_->() for @CleanupHandlers;
    stop_nginx($signal) if defined $NginxPid;
}

END {
    local $?;   # keep the test script's exit status
    cleanup();
}

1;
