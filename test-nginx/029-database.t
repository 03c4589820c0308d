# examples/jokes under two nginx workers that share one database (gateway::database): a joke
# posted through one worker is read back through the other, 100 times, none lost; a reload
# keeps them. First on SQLite, the default file under nginx's prefix; then on PostgreSQL when
# TEST_NGINX_POSTGRES_URL names one (scripts/test starts one), where the server is also
# stopped mid-test (with TEST_NGINX_POSTGRES_DIR and TEST_NGINX_POSTGRES_PORT, through
# scripts/lib/postgres.sh): the app answers 503 with the reason in the error log, starts
# workers all the same, and serves again once the server is back.
#
# Each response names the worker that made it (add_header X-Worker $pid), and the listening
# socket has reuseport, so the kernel spreads the connections (one per request) over both.

use strict;
use warnings;
use FindBin ();
use lib "$FindBin::Bin/lib";
use HTTP::Tiny ();
use JSON::PP qw(decode_json encode_json);
use Test::More;
use Test::Gateway::Server qw(apps_dir patience start_nginx reload finish log_lines worker_pids);

my $apps = apps_dir() or plan skip_all => 'TEST_NGINX_APPS is not set';
my $http = HTTP::Tiny->new(keep_alive => 0, timeout => 15 * patience());
my $seeds = 3;

sub conf {
    my ($database) = @_;
    my $setting = defined $database ? "gateway_app_param database $database;" : '';
    return (name => 'gateway-029', workers => 2, listen => 'reuseport',
        main => 'thread_pool jokes threads=4;', server => <<"CONF");
        location /jokes {
            gateway_app $apps/libjokes.so;
            gateway_thread_pool jokes;
            gateway_app_param max_jokes 100000;
            $setting
            add_header X-Worker \$pid always;
        }
CONF
}

sub request {
    my ($server, $method, $path, $body) = @_;
    my %options = defined $body
        ? (headers => { 'Content-Type' => 'application/json' }, content => encode_json($body))
        : ();
    my $r = $http->request($method, "http://127.0.0.1:$server->{port}$path", \%options);
    $r->{worker} = $r->{headers}{'x-worker'} // 'none';
    return $r;
}

sub jokes {
    my $server = shift;
    my $r = request($server, 'GET', '/jokes');
    return $r->{status} == 200 ? scalar @{ decode_json($r->{content}) } : "status $r->{status}";
}

# Posts 100 jokes; reads each back through the other worker (another connection, until
# another worker takes it). Checks none was lost and both workers wrote.
sub across_workers {
    my ($server, $what) = @_;
    my %workers = map { ($_ => 1) } worker_pids($server);
    my (%wrote, %read, @problems);
    for my $n (1 .. 100) {
        my $text = "$what joke $n";
        my $post = request($server, 'POST', '/jokes', { text => $text });
        if ($post->{status} != 201) {
            push @problems, "POST $n: $post->{status} $post->{content}";
            last;
        }
        my $id = decode_json($post->{content})->{id};
        $wrote{ $post->{worker} }++;
        my $get;
        for (1 .. 50) {
            $get = request($server, 'GET', "/jokes/$id");
            last if $get->{worker} ne $post->{worker};
        }
        if ($get->{worker} eq $post->{worker}) {
            push @problems, "joke $n: only worker $post->{worker} answered, 50 times";
            last;
        }
        $read{ $get->{worker} }++;
        my $joke = $get->{status} == 200 ? decode_json($get->{content}) : {};
        push @problems, "joke $n (id $id) written by $post->{worker}, read by $get->{worker}: "
            . "$get->{status} $get->{content}" unless ($joke->{text} // '') eq $text;
    }
    is_deeply \@problems, [], "$what: 100 jokes, each posted through one worker, read through the other";
    is_deeply [sort keys %wrote], [sort keys %workers], "$what: both workers wrote (@{[ %wrote ]})";
    is_deeply [sort keys %read], [sort keys %workers], "$what: both workers read (@{[ %read ]})";
    is jokes($server), $seeds + 100, "$what: the list has the seeds and all 100";
}

sub survives_a_reload {
    my ($server, $what) = @_;
    my %old = map { ($_ => 1) } worker_pids($server);
    is reload($server), '', "$what: reloaded";
    my $r = request($server, 'GET', '/jokes');
    ok !$old{ $r->{worker} }, "$what: a new worker answers ($r->{worker})";
    is jokes($server), $seeds + 100, "$what: the new workers see every joke";
}

subtest 'SQLite: the default file under the prefix' => sub {
    my $server = start_nginx(conf());
    my $file = "$server->{prefix}/jokes.sqlite3";
    across_workers($server, 'SQLite');
    ok -f $file, "the database is $file";
    ok -e "$file-wal", 'in WAL mode';
    survives_a_reload($server, 'SQLite');
    finish($server, 'SQLite');
};

subtest 'PostgreSQL' => sub {
    my $url = $ENV{TEST_NGINX_POSTGRES_URL};
    plan skip_all => 'TEST_NGINX_POSTGRES_URL is not set (scripts/test starts a PostgreSQL and sets it)'
        unless $url;
    # A fresh table: the server may be kept between runs.
    is system('psql', '--quiet', '--no-psqlrc', "--dbname=$url",
        '--command=SET client_min_messages = warning', '--command=DROP TABLE IF EXISTS jokes'),
        0, 'the jokes table dropped';
    my $server = start_nginx(conf($url));
    across_workers($server, 'PostgreSQL');
    survives_a_reload($server, 'PostgreSQL');

    my ($dir, $port) = @ENV{qw(TEST_NGINX_POSTGRES_DIR TEST_NGINX_POSTGRES_PORT)};
    SKIP: {
        skip 'the outage: TEST_NGINX_POSTGRES_DIR and TEST_NGINX_POSTGRES_PORT are not set', 9
            unless $dir && $port;
        my $postgres = sub {
            local @ENV{qw(POSTGRES_DIR POSTGRES_PORT)} = ($dir, $port);
            return system('bash', '-c', '. "$0" && "$1"',
                "$FindBin::Bin/../scripts/lib/postgres.sh", "postgres_$_[0]");
        };
        is $postgres->('pause'), 0, 'PostgreSQL stopped';
        my $down = request($server, 'GET', '/jokes');
        is "$down->{status} $down->{content}", "503 The service is unavailable; try again later.\n",
            'a read answers 503';
        is request($server, 'POST', '/jokes', { text => 'lost' })->{status}, 503, 'a write too';
        my @reasons = log_lines($server,
            qr/\[error\] .*gateway: app "jokes".*PostgreSQL database \S+ at 127\.0\.0\.1:\Q$port\E is unavailable: timed out waiting for connection: .*refused/);
        ok @reasons >= 2, 'the reason is in the error log, for each request' or diag explain \@reasons;
        note $reasons[0] if @reasons;

        is reload($server), '', 'reloaded while it is down';
        ok scalar(log_lines($server,
            qr/\[warn\] .*gateway: app "jokes".*is unavailable: .*the app answers 503 until it can be reached/)),
            'the new workers start all the same, and say so';
        is request($server, 'GET', '/jokes')->{status}, 503, 'and answer 503';

        is $postgres->('resume'), 0, 'PostgreSQL started again';
        is jokes($server), $seeds + 100, 'the app serves again, every joke there';
    }
    finish($server, 'PostgreSQL');
};

done_testing;
