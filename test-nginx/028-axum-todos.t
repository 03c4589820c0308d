# Ordinary axum apps mounted with gateway::tower_app!, unchanged:
#
# - examples/axum-todos (extractors, State, Json, tower-http's TraceLayer and gzip
#   CompressionLayer, sqlx on SQLite) through nginx with two workers: its whole CRUD flow,
#   and one SQLite database shared by both workers (todos written through one are read
#   through the other, concurrent writes from both all land); `nginx -t` refuses a database
#   URL it cannot use, and a database that is down or never answers fails the worker's init
#   (503), at once or within 10 s;
#   then the same Router under axum::serve (the crate's development server, on a free port,
#   on the same database file) answering the same.
# - bench/proxy-server's Router (the proxy_pass row's upstream) in-process through
#   bench/tower: the bench's workloads answer bench/expected/ byte for byte.
#
# A plain Test::More script on Test::Gateway::Server (see 025-tower.t).
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use FindBin;
use HTTP::Tiny;
use IO::Socket::INET;
use IO::Uncompress::Gunzip qw(gunzip $GunzipError);
use JSON::PP qw(decode_json encode_json);
use POSIX ();
use Time::HiRes qw(sleep);
use lib "$FindBin::Bin/lib";
use Test::Gateway::Process qw(free_port slurp);
use Test::Gateway::Server qw(apps_dir patience start_nginx write_conf nginx_t finish log_lines);

my $apps = apps_dir() or plan skip_all => 'TEST_NGINX_APPS is not set';
my $todos_lib = "$apps/libaxum_todos.so";
my $todos_bin = "$apps/axum-todos";
my $bench_lib = "$apps/libbench_tower.so";
plan skip_all => "$todos_lib is not built" unless -f $todos_lib;

my $k = patience();
my $bench = "$FindBin::Bin/../bench";
my $dir = tempdir('gateway-028-XXXXXX', TMPDIR => 1, CLEANUP => 1);
# Workers of a root master run as root here (Test::Gateway::Server), so they can write it.
my $database = "sqlite:$dir/todos.sqlite3";

# One request on a connection of its own (so that, with reuseport, either worker may take
# it). Options: json (a body to send as JSON), body and type, headers, timeout (seconds).
# Returns HTTP::Tiny's response: status, content, headers (lower-cased names).
sub call {
    my ($base, $method, $path, %o) = @_;
    my %headers = %{ $o{headers} // {} };
    my $content = $o{body};
    if (exists $o{json}) {
        $content = encode_json($o{json});
        $headers{'Content-Type'} = 'application/json';
    }
    $headers{'Content-Type'} = $o{type} if $o{type};
    my $http = HTTP::Tiny->new(keep_alive => 0, timeout => $o{timeout} // 10 * $k);
    return $http->request($method, "$base$path", { headers => \%headers, defined $content ? (content => $content) : () });
}

sub shows { my $r = shift; return "$r->{status} $r->{content}" }

# The CRUD flow, with $base the app's root URL and $mount its mount point (the Location's
# prefix). Leaves no todo behind.
sub crud_flow {
    my ($base, $mount) = @_;
    my $r = call($base, 'POST', '/todos', json => { title => '  write the tests  ' });
    is $r->{status}, 201, 'POST /todos: 201' or diag shows($r);
    my ($id) = $r->{content} =~ /^\{"id":(\d+),/;
    ok $id, '... with the new id';
    $id //= 0;
    my $todo = qq({"id":$id,"title":"write the tests","done":false});
    is $r->{content}, $todo, '... the todo as JSON, its title trimmed';
    is $r->{headers}{location}, "$mount/todos/$id", "... Location $mount/todos/$id";
    is $r->{headers}{'content-type'}, 'application/json', '... Content-Type application/json';

    is shows(call($base, 'GET', "/todos/$id")), "200 $todo", "GET /todos/$id: the todo";
    (my $done = $todo) =~ s/false/true/;
    is shows(call($base, 'POST', "/todos/$id/toggle")), "200 $done", "POST /todos/$id/toggle: done";
    is shows(call($base, 'GET', "/todos/$id")), "200 $done", '... and stays so';
    my $list = call($base, 'GET', '/todos');
    is $list->{status}, 200, 'GET /todos: 200';
    my $todos = eval { decode_json($list->{content}) } // [];
    ok((grep { $_->{id} == $id && $_->{done} } @$todos), '... the list has it, done') or diag shows($list);
    is shows(call($base, 'POST', "/todos/$id/toggle")), "200 $todo", 'toggled again: not done';

    $r = call($base, 'DELETE', "/todos/$id");
    is $r->{status}, 204, "DELETE /todos/$id: 204";
    is $r->{content} // '', '', '... no body';
    is shows(call($base, 'GET', "/todos/$id")), qq(404 {"error":"no todo $id"}), '... then GET: 404, in JSON';
    is call($base, 'DELETE', "/todos/$id")->{status}, 404, '... DELETE again: 404';
    is call($base, 'POST', "/todos/$id/toggle")->{status}, 404, '... toggle: 404';

    is shows(call($base, 'POST', '/todos', json => { title => ' ' })), qq(400 {"error":"the title is empty"}),
        'an empty title: 400, in JSON';
    is call($base, 'POST', '/todos', body => '{"title": "x"}', type => 'text/plain')->{status}, 415,
        'a body that is not application/json: axum\'s 415';
    is call($base, 'POST', '/todos', json => { name => 'x' })->{status}, 422, 'JSON without a title: axum\'s 422';
    is call($base, 'PUT', '/todos')->{status}, 405, 'PUT /todos: axum\'s 405';
}

my $todos_location = <<"CONF";
        location /axum/ {
            gateway_app $todos_lib;
            gateway_app_param database $database;
            add_header X-Worker \$pid always;
        }
CONF

my $listed;    # the todos nginx listed last, for the development server to list the same

subtest 'axum-todos through nginx, two workers, one SQLite database' => sub {
    # reuseport: the kernel spreads connections over both workers.
    my $server = start_nginx(name => 'gateway-028', workers => 2, listen => 'reuseport', server => $todos_location);
    my $base = "http://127.0.0.1:$server->{port}/axum";
    crud_flow($base, '/axum');

    # 4 clients at once, 10 todos each, through whichever worker takes each connection.
    my ($clients, $each) = (4, 10);
    my @pipes;
    for my $c (1 .. $clients) {
        my $pid = open my $pipe, '-|' // die "fork: $!";
        if (!$pid) {
            for my $i (1 .. $each) {
                my $r = call($base, 'POST', '/todos', json => { title => "todo $c.$i" });
                print "$r->{status} " . ($r->{headers}{'x-worker'} // '-') . "\n";
            }
            POSIX::_exit(0);
        }
        push @pipes, $pipe;
    }
    my (%status, %writers);
    for my $pipe (@pipes) {
        while (<$pipe>) {
            my ($status, $worker) = split;
            $status{$status}++;
            $writers{$worker}++;
        }
        close $pipe;
    }
    is_deeply \%status, { 201 => $clients * $each }, "$clients clients creating $each todos each at once: all 201";
    is scalar(keys %writers), 2, 'both workers wrote: ' . join(', ', map { "$_ ($writers{$_})" } sort keys %writers);

    my %readers;
    my @lists = map { call($base, 'GET', '/todos') } 1 .. 16;
    $readers{ $_->{headers}{'x-worker'} // '-' }++ for @lists;
    is scalar(keys %readers), 2, 'both workers listed: ' . join(', ', map { "$_ ($readers{$_})" } sort keys %readers);
    my $expected = join ',', sort map { my $c = $_; map { "todo $c.$_" } 1 .. $each } 1 .. $clients;
    my @complete = grep {
        $_->{status} == 200 && join(',', sort map { $_->{title} } @{ decode_json($_->{content}) }) eq $expected
    } @lists;
    is scalar @complete, scalar @lists, 'every list, from either worker, has all the todos of both';
    $listed = $lists[0]{content};

    my $r = call($base, 'GET', '/todos', headers => { 'Accept-Encoding' => 'gzip' });
    is $r->{headers}{'content-encoding'}, 'gzip', 'with Accept-Encoding: gzip, tower-http\'s CompressionLayer gzips the list';
    gunzip(\$r->{content} => \my $plain) or diag "gunzip: $GunzipError";
    is $plain, $listed, '... which unzips to the same JSON';

    finish($server, 'axum-todos');
};

subtest 'by default, SQLite under nginx\'s prefix; a relative sqlite: path resolves there too' => sub {
    my $locations = join '', map {
        my ($path, $param) = @$_;
        (my $location = $todos_location) =~ s/\Q$database\E/$param/;
        $location =~ s{location /axum/}{location $path};
        $param eq '' ? $location =~ s/^.*gateway_app_param database.*\n//mr : $location;
    } ['/default/', ''], ['/relative/', 'sqlite:logs/relative-todos.sqlite3'];
    my $server = start_nginx(name => 'gateway-028p', server => $locations);
    my $base = "http://127.0.0.1:$server->{port}";
    is call($base, 'POST', '/default/todos', json => { title => 'kept by default' })->{status}, 201,
        'no database param: POST /todos: 201';
    ok -s "$server->{prefix}/axum-todos.sqlite3", '... into axum-todos.sqlite3 under the prefix';
    is call($base, 'POST', '/relative/todos', json => { title => 'kept relative' })->{status}, 201,
        'database sqlite:logs/relative-todos.sqlite3: POST /todos: 201';
    ok -s "$server->{prefix}/logs/relative-todos.sqlite3", '... into logs/ under the prefix';
    finish($server, 'default database');
    unlink "$server->{prefix}/axum-todos.sqlite3", glob("$server->{prefix}/axum-todos.sqlite3-*");
};

subtest 'on PostgreSQL' => sub {
    my $url = $ENV{TEST_NGINX_POSTGRES_URL};
    plan skip_all => 'TEST_NGINX_POSTGRES_URL is not set (scripts/test starts a PostgreSQL and sets it)' unless $url;
    (my $location = $todos_location) =~ s/\Q$database\E/"$url"/;
    my $server = start_nginx(name => 'gateway-028pg', workers => 2, listen => 'reuseport', server => $location);
    crud_flow("http://127.0.0.1:$server->{port}/axum", '/axum');
    finish($server, 'axum-todos on PostgreSQL');
};

subtest 'nginx -t refuses a database URL the app cannot use' => sub {
    (my $location = $todos_location) =~ s/\Q$database\E/mysql:\/\/todos\@localhost\/todos/;
    my $server = write_conf(name => 'gateway-028t', server => $location);
    my ($status, $output) = nginx_t($server);
    isnt $status, 0, 'nginx -t fails';
    like $output, qr/database.*mysql:.*expected sqlite:PATH or postgres/, '... saying why' or diag $output;
};

subtest 'a database that is down or silent: init fails with the reason, the location answers 503' => sub {
    # A port bound but not listening refuses connections; one listening but never accepting
    # takes them and never answers.
    my $refusing = IO::Socket::INET->new(LocalAddr => '127.0.0.1', Proto => 'tcp') or die "socket: $!";
    my $silent = IO::Socket::INET->new(LocalAddr => '127.0.0.1', Proto => 'tcp', Listen => 8) or die "socket: $!";
    my $locations = join '', map {
        my ($path, $port) = @$_;
        (my $location = $todos_location) =~ s/\Q$database\E/postgres:\/\/todos\@127.0.0.1:$port\/todos/;
        $location =~ s{location /axum/}{location $path};
        $location;
    } ['/down/', $refusing->sockport], ['/silent/', $silent->sockport];
    my $server = start_nginx(name => 'gateway-028d', server => $locations);
    my $base = "http://127.0.0.1:$server->{port}";
    # The worker answers once both inits are over: the silent one's after its 10 s.
    my $r = call($base, 'GET', '/silent/todos', timeout => 30 * $k);
    is $r->{status}, 503, 'a database that never answers: GET /silent/todos: 503';
    is scalar(log_lines($server, qr/app "axum-todos".*init failed: database: no answer within 10 s/)), 1,
        '... init gave up after 10 s, saying so' or diag slurp($server->{log});
    is call($base, 'GET', '/down/todos')->{status}, 503, 'a database that refuses connections: GET /down/todos: 503';
    is scalar(log_lines($server, qr/app "axum-todos".*init failed: database: .*Connection refused/)), 1,
        '... init failed at once, saying why' or diag slurp($server->{log});
    finish($server, 'database down');
};

subtest 'the same Router under axum::serve, the development server' => sub {
    plan skip_all => "$todos_bin is not built" unless -x $todos_bin;
    my $port = free_port();
    my $log = "$dir/dev-server.log";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDOUT, '>', $log;
        open STDERR, '>&', \*STDOUT;
        exec $todos_bin, "127.0.0.1:$port", $database or POSIX::_exit(127);
    }
    my $base = "http://127.0.0.1:$port";
    my $up = 0;
    for (1 .. 100 * $k) {
        last if $up = call($base, 'GET', '/todos')->{status} == 200;
        sleep 0.05;
    }
    ok $up, "axum-todos 127.0.0.1:$port answers" or diag slurp($log);
    is call($base, 'GET', '/todos')->{content}, $listed, 'it lists the todos nginx wrote to the same database'
        if defined $listed;
    crud_flow($base, '');
    kill TERM => $pid;
    my $waited = 0;
    until (waitpid($pid, POSIX::WNOHANG()) == $pid) {
        if (($waited += 0.02) > 10 * $k) {
            kill KILL => $pid;
            waitpid $pid, 0;
            last;
        }
        sleep 0.02;
    }
    is $?, 0, 'SIGTERM stops it, exit status 0';
    like slurp($log), qr/tower_http::trace.*finished processing request/, 'TraceLayer logged its requests';
};

subtest 'bench/proxy-server\'s Router in-process answers bench/expected/ byte for byte' => sub {
    plan skip_all => "$bench_lib is not built" unless -f $bench_lib;
    my $server = start_nginx(name => 'gateway-028b', server => <<"CONF");
        location / {
            gateway_app $bench_lib;
            gateway_app_param templates $bench/templates;
        }
CONF
    my $base = "http://127.0.0.1:$server->{port}";
    # As scripts/bench's workloads: path, reference, Content-Type.
    my $echo = substr(('ngx-gateway echo body 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ' . "\n") x 800, 0, 65536);
    for my $w (['GET', '/hello', 'hello.txt', 'text/plain; charset=utf-8'],
               ['GET', '/json', 'json.json', 'application/json'],
               ['GET', '/template?name=Ada%20Lovelace', 'template.html', 'text/html; charset=utf-8'],
               ['POST', '/echo', 'echo.txt', 'text/plain; charset=utf-8', $echo]) {
        my ($method, $path, $file, $type, $body) = @$w;
        my $r = call($base, $method, $path, defined $body ? (body => $body, type => 'application/octet-stream') : ());
        is $r->{status}, 200, "$method $path: 200";
        ok $r->{content} eq slurp("$bench/expected/$file"), "... the bytes of bench/expected/$file"
            or diag $r->{content};
        is $r->{headers}{'content-type'}, $type, "... Content-Type $type";
        is $r->{headers}{'content-length'}, length $r->{content}, '... with a Content-Length, as every bench row';
    }
    finish($server, 'bench tower');
};

done_testing;
