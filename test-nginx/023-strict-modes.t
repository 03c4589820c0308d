# gateway_strict_modes: when the master runs as root, `nginx -t` refuses an app library that
# someone other than root or nginx's worker user could replace, as sshd's StrictModes judges
# key files: the library (its canonical path) or a directory above it writable by group or
# others (but a root-owned sticky directory, like /tmp), or owned by another user. Each
# refusal is an [emerg] naming the library, the reason and the gateway_app line;
# `gateway_strict_modes off;` lets each of them pass.
#
# A plain Test::More script on Test::Gateway::Server: it copies libhello.so into a fresh
# tree, changes owners and modes there and runs `nginx -t` (once, a start) on configs of its
# own. Needs root (chown, and the check only runs for a root master): skipped otherwise.
use strict;
use warnings;
use Test::More;
use Cwd qw(abs_path);
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Gateway::Server qw(apps_dir write_conf line_of nginx_t launch pid_from_file);
use Test::Gateway::Process qw(stop_pid write_file);

my $apps = apps_dir() or plan skip_all => 'TEST_NGINX_APPS is not set';
plan skip_all => 'strict modes are judged only when nginx runs as root' if $> != 0;

# Debian's nginx writes its startup errors to stderr in the error log's format, with "PID#TID: ".
my $pid_prefix = qr/(?:\d+#\d+: )?/;
# A uid that is neither root nor the worker user of `user root;`: nobody's, as on Debian.
my $other_uid = 65534;

# A fresh tree, $top/up/dir/libhello.so, every directory 0755 and the library 0644, owned by
# root. $top's own parents (the temporary directory's) are left as they are: /tmp is a
# root-owned sticky directory, which passes.
sub fresh_tree {
    my $top = abs_path(tempdir('gateway-023-XXXXXX', TMPDIR => 1, CLEANUP => 1));
    chmod 0755, $top or die "chmod $top: $!";
    my ($up, $dir) = ("$top/up", "$top/up/dir");
    mkdir $_, 0755 or die "mkdir $_: $!" for $up, $dir;
    chmod 0755, $up, $dir;
    my $library = "$dir/libhello.so";
    copy("$apps/libhello.so", $library) or die "copy to $library: $!";
    chmod 0644, $library or die "chmod $library: $!";
    return { top => $top, up => $up, dir => $dir, library => $library };
}

# A config mounting $library at /hello (and $o{also} more locations of it), with
# $o{http} in the http block; $o{user}: the `user` line instead of write_conf's `user root;`
# ('' for none).
sub conf_for {
    my ($library, %o) = @_;
    my $locations = join '', map { <<"CONF" } 0 .. ($o{also} // 0);
        location /hello$_ {
            gateway_app $library;
        }
CONF
    my $server = write_conf(name => 'gateway-023', http => $o{http} // '', server => $locations);
    if (defined $o{user}) {
        $server->{text} =~ s/^user root;\n/$o{user}/m or die "no user line in the config\n";
        write_file($server->{conf}, $server->{text});
    }
    return $server;
}

sub where {
    my ($server, $library) = @_;
    return "$server->{conf}:" . line_of($server, "gateway_app $library");
}

# nginx -t passes on the config.
sub passes {
    my ($server, $what) = @_;
    my ($status, $output) = nginx_t($server);
    is $status, 0, "$what: nginx -t passes" or diag $output;
}

# nginx -t fails with the [emerg] about $library, $reason (a pattern) and the gateway_app line.
sub refused {
    my ($server, $library, $reason, $what) = @_;
    my ($status, $output) = nginx_t($server);
    isnt $status, 0, "$what: nginx -t fails";
    my $where = where($server, $library);
    like $output,
        qr/\[emerg\] ${pid_prefix}gateway: app library "\Q$library\E" is not trusted: $reason in \Q$where\E\n/,
        "$what: the [emerg] names the library, why, and $where"
        or diag $output;
    return $output;
}

subtest 'a library of root, 0644, in root-owned 0755 directories passes' => sub {
    my $t = fresh_tree();
    passes(conf_for($t->{library}), 'as copied');
    chmod 0755, $t->{library};
    passes(conf_for($t->{library}), 'mode 0755');
};

# Each case breaks a fresh tree; the reason nginx gives, as a pattern of the tree.
my @cases = (
    [ 'the library is g+w', sub { chmod 0664, $_[0]{library} },
      sub { qr/file "\Q$_[0]{library}\E" is writable by group/ } ],
    [ 'the library is o+w', sub { chmod 0646, $_[0]{library} },
      sub { qr/file "\Q$_[0]{library}\E" is writable by others/ } ],
    [ 'the library is g+w and o+w', sub { chmod 0666, $_[0]{library} },
      sub { qr/file "\Q$_[0]{library}\E" is writable by group and others/ } ],
    [ "the library's directory is g+w", sub { chmod 0775, $_[0]{dir} },
      sub { qr/directory "\Q$_[0]{dir}\E" is writable by group/ } ],
    [ 'a directory two levels up is o+w, without the sticky bit', sub { chmod 0757, $_[0]{up} },
      sub { qr/directory "\Q$_[0]{up}\E" is writable by others/ } ],
    [ "the library is owned by uid $other_uid, neither root nor the worker user (root)",
      sub { chown $other_uid, -1, $_[0]{library} or die "chown: $!" },
      sub { qr/file "\Q$_[0]{library}\E" is owned by uid $other_uid, not root, which is also nginx's worker user/ } ],
    [ "a directory two levels up is sticky and writable by all, but owned by uid $other_uid",
      sub { chown $other_uid, -1, $_[0]{up} or die "chown: $!"; chmod 01777, $_[0]{up} },
      sub { qr/directory "\Q$_[0]{up}\E" is owned by uid $other_uid, not root, which is also nginx's worker user/ } ],
);

for my $case (@cases) {
    my ($what, $break, $reason) = @$case;
    subtest $what => sub {
        my $t = fresh_tree();
        $break->($t);
        refused(conf_for($t->{library}), $t->{library}, $reason->($t), 'strict modes on (the default)');
        refused(conf_for($t->{library}, http => 'gateway_strict_modes on;'), $t->{library}, $reason->($t),
            'gateway_strict_modes on;');
        passes(conf_for($t->{library}, http => 'gateway_strict_modes off;'), 'gateway_strict_modes off;');
    };
}

subtest 'a directory above that is a root-owned sticky 1777 directory, like /tmp, passes' => sub {
    my $t = fresh_tree();
    chmod 01777, $t->{up} or die "chmod: $!";
    passes(conf_for($t->{library}), 'up/ is 1777');
    chmod 01777, $t->{dir} or die "chmod: $!";
    passes(conf_for($t->{library}), 'up/ and up/dir/ are 1777');
    # The sticky bit covers directories only: entries below are judged on their own.
    chmod 01666, $t->{library};
    refused(conf_for($t->{library}), $t->{library}, qr/file "\Q$t->{library}\E" is writable by group and others/,
        'but a library writable by all below them fails');
};

subtest "the worker user may own the library: nginx's `user`, or its default, nobody" => sub {
    my $t = fresh_tree();
    chown $other_uid, -1, $t->{library} or die "chown: $!";
    my $nobody = getpwuid($other_uid);
    my $group = getgrgid($other_uid) // 'nogroup';
    SKIP: {
        skip "uid $other_uid is not nobody here", 4 unless ($nobody // '') eq 'nobody';
        passes(conf_for($t->{library}, user => "user nobody $group;\n"), "user nobody $group; (uid $other_uid)");
        passes(conf_for($t->{library}, user => ''), 'no user directive: nginx runs workers as nobody');
        my $other = fresh_tree();
        chown 1, -1, $other->{library} or die "chown: $!";
        refused(conf_for($other->{library}, user => "user nobody $group;\n"), $other->{library},
            qr/file "\Q$other->{library}\E" is owned by uid 1, neither root nor nginx's worker user \(uid $other_uid\)/,
            "user nobody $group;, a library of uid 1");
    }
    refused(conf_for($t->{library}, user => "user root;\n"), $t->{library}, qr/file "\Q$t->{library}\E" is owned by uid $other_uid, not root, which is also nginx's worker user/,
        'user root;');
};

subtest 'the canonical path is judged: a symlink in a trusted directory to a library in an untrusted one' => sub {
    my $untrusted = fresh_tree();
    chmod 0777, $untrusted->{dir} or die "chmod: $!";
    my $t = fresh_tree();
    unlink $t->{library} or die "unlink: $!";
    symlink $untrusted->{library}, $t->{library} or die "symlink: $!";
    refused(conf_for($t->{library}), $t->{library}, qr/directory "\Q$untrusted->{dir}\E" is writable by group and others/,
        'the link');
    # And the other way round: a link in an untrusted directory to a trusted library.
    my $good = fresh_tree();
    my $bad = fresh_tree();
    chmod 0777, $bad->{dir} or die "chmod: $!";
    unlink $bad->{library} or die "unlink: $!";
    symlink $good->{library}, $bad->{library} or die "symlink: $!";
    passes(conf_for($bad->{library}), 'a link in a writable directory to a trusted library');
};

subtest 'a library several locations share is reported once, with the first gateway_app line' => sub {
    my $t = fresh_tree();
    chmod 0664, $t->{library};
    my $server = conf_for($t->{library}, also => 2);
    my $output = refused($server, $t->{library}, qr/file "\Q$t->{library}\E" is writable by group/, 'three locations');
    is scalar(() = $output =~ /is not trusted/g), 1, 'one [emerg] for the library' or diag $output;
};

subtest 'gateway_strict_modes counts from where it stands: a library is judged before it is loaded' => sub {
    my $t = fresh_tree();
    chmod 0664, $t->{library};
    # Loading a library runs its initialisers in the master, so the judgement cannot wait for
    # the end of the http block: an "off" after the gateway_app lines comes too late.
    my $server = conf_for($t->{library});
    $server->{text} =~ s/\}\n\z/    gateway_strict_modes off;\n}\n/ or die "no end of the http block\n";
    write_file($server->{conf}, $server->{text});
    refused($server, $t->{library}, qr/file "\Q$t->{library}\E" is writable by group/,
        'gateway_strict_modes off; after the gateway_app lines');
};

subtest 'nginx does not start with an untrusted library either' => sub {
    my $t = fresh_tree();
    chmod 0664, $t->{library};
    my $server = conf_for($t->{library});
    my ($status, $output) = launch($server);
    if (!$status) {
        my $pid = pid_from_file($server);
        stop_pid($pid) if defined $pid;
    }
    isnt $status, 0, 'nginx exits non-zero';
    my $where = where($server, $t->{library});
    like $output, qr/\[emerg\] ${pid_prefix}gateway: app library "\Q$t->{library}\E" is not trusted: .* in \Q$where\E\n/,
        'with the [emerg]'
        or diag $output;
};

subtest 'the directive parses like any nginx flag' => sub {
    my $t = fresh_tree();
    for my $case (
        [ 'gateway_strict_modes maybe;', qr/invalid value "maybe" in "gateway_strict_modes" directive, it must be "on" or "off"/ ],
        [ "gateway_strict_modes off;\n    gateway_strict_modes off;", qr/"gateway_strict_modes" directive is duplicate/ ],
        [ 'gateway_strict_modes;', qr/invalid number of arguments in "gateway_strict_modes" directive/ ],
    ) {
        my ($directive, $message) = @$case;
        my $server = conf_for($t->{library}, http => $directive);
        my ($status, $output) = nginx_t($server);
        isnt $status, 0, "$directive: nginx -t fails";
        my $line = line_of($server, $directive) + ($directive =~ tr/\n//);
        like $output, qr/\[emerg\] ${pid_prefix}$message in \Q$server->{conf}:$line\E\n/,
            "$directive: the [emerg] names the file and line ($line)"
            or diag $output;
    }
    my $server = write_conf(name => 'gateway-023', server => <<"CONF");
        location /hello {
            gateway_strict_modes off;
            gateway_app $t->{library};
        }
CONF
    my ($status, $output) = nginx_t($server);
    isnt $status, 0, 'in a location: nginx -t fails';
    like $output, qr/"gateway_strict_modes" directive is not allowed here/, 'not allowed there' or diag $output;
    passes(conf_for($t->{library}, http => 'gateway_strict_modes ON;'), 'ON, as nginx accepts any case');
};

done_testing;
