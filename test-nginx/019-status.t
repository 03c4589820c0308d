# Observability: the status zone and `gateway_status` (JSON, and Prometheus text exposition
# 0.0.4 checked with a real parser), the log variables $gateway_app, $gateway_app_time and
# $gateway_status in an access log, and the gateway_slow_request warning.
#
# The counters are summed over all workers in shared memory: the main server runs a master
# and two workers (listening with reuseport, so the kernel spreads the connections over
# both), sends a known sequence of requests, then asks for the status until both workers
# have answered it: every answer must be the same, with exact sums. The same server then
# shows timeouts, the gauges while a call runs, and counters kept across a reload (HUP). A
# second server with a one-thread, one-slot pool shows queue_full and the pool's rejected
# count; the configuration errors are checked with nginx -t.
#
# A plain Test::More script on Test::Gateway::Server, like 016-offload.t: it uses the
# Test::Nginx environment (TEST_NGINX_BINARY, TEST_NGINX_LOAD_MODULES, TEST_NGINX_APPS,
# TEST_NGINX_PORT) but writes its own nginx.conf into a temporary prefix, starts nginx
# itself (listening on 127.0.0.1 only), and always stops it. The Prometheus checks need Debian's python3-prometheus-client
# (scripts/bootstrap installs it); without it they are skipped, saying so.
#
# Timing bounds are loose (seconds) on purpose: CI has two slow cores. Where a test must
# wait for a call to be running or queued, it polls the status instead of sleeping.
use strict;
use warnings;
use Test::More;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(sleep time);
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Gateway::Process qw(slurp write_file);
use Test::Gateway::Server qw(
    apps_dir write_conf rewrite_conf nginx_t start_nginx reload worker_pids log_lines finish
    get send_request read_response describe
);

my $apps = apps_dir() or plan skip_all => 'TEST_NGINX_APPS is not set';

my $hex32 = qr/[0-9a-f]{32}/;
# Debian's nginx writes its startup errors to stderr in the error log's format, with "PID#TID: ".
my $pid_prefix = qr/(?:\d+#\d+: )?/;
my $json = JSON::PP->new->canonical;

# The latency histogram's upper bounds, in milliseconds, as the module documents them.
my @bounds_ms = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000);

# --- Python's Prometheus parser ---------------------------------------------------------

my $parser_script = <<'PY';
import json, sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1], encoding="utf-8").read()
out = []
for family in text_string_to_metric_families(text):
    out.append({"name": family.name, "type": family.type, "documentation": family.documentation,
                "samples": [[s.name, s.labels, s.value] for s in family.samples]})
print(json.dumps(out))
PY

# The first python3 that has prometheus_client: Debian's (python3-prometheus-client installs
# it for /usr/bin/python3), then whichever python3 is on PATH.
my $python = do {
    my $found;
    for my $candidate ('/usr/bin/python3', 'python3') {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            open STDOUT, '>', '/dev/null';
            open STDERR, '>', '/dev/null';
            { exec $candidate, '-c', 'from prometheus_client.parser import text_string_to_metric_families' }
            POSIX::_exit(127);
        }
        waitpid $pid, 0;
        if ($? == 0) {
            $found = $candidate;
            last;
        }
    }
    $found;
};
my $no_parser = 'the Prometheus checks need python3 with prometheus_client: install '
    . "Debian's python3-prometheus-client (scripts/bootstrap does)";

# --- nginx ----------------------------------------------------------------------------

# What every server's config has: a master (Test::Gateway::Server's default), listening with
# reuseport so the kernel spreads connections over the workers, and an access log with the
# log variables (see access_entries).
my %common = (
    name => 'gateway-019',
    listen => 'reuseport',
    log_format => '$pid $status app=$gateway_app t=$gateway_app_time s=$gateway_status $request_uri',
);

# The panics the main server's sequence causes on purpose, which finish would otherwise
# count as crashes.
my $handler_panic = qr/\[error\] .*gateway: app "stream" failed: handler panicked at /;

# --- the status -----------------------------------------------------------------------

# GET /status (JSON): returns the decoded document, or dies saying what came instead.
# In list context also the raw body and the pid of the worker that answered.
sub status {
    my ($server, @headers) = @_;
    my $c = get($server, '/status', @headers);
    die 'GET /status: ' . describe($c) . "\n" unless $c->{status} eq '200';
    my $doc = eval { $json->decode($c->{body}) } or die "GET /status: not JSON ($@): $c->{body}\n";
    return wantarray ? ($doc, $c->{body}, $c->{headers}{'x-pid'}, $c) : $doc;
}

# Polls the status until $cond->($doc) holds or $secs pass; returns the last document and
# whether the condition held.
sub wait_status {
    my ($server, $cond, $secs) = @_;
    my $deadline = time + $secs;
    while (1) {
        my $doc = status($server);
        return ($doc, 1) if $cond->($doc);
        return ($doc, 0) if time > $deadline;
        sleep 0.05;
    }
}

# An app's counters (its totals over its locations) without the histogram, for is_deeply.
sub counters {
    my ($doc, $app) = @_;
    my %copy = %{ $doc->{apps}{$app} // return undef };
    delete @copy{qw(latency locations)};
    return \%copy;
}

sub app_counters {
    my (%o) = @_;
    my %responses = map { ($_ => $o{$_} // 0) } qw(1xx 2xx 3xx 4xx 5xx);
    my $requests = 0;
    $requests += $_ for values %responses;
    return {
        requests => $requests,
        responses => \%responses,
        map({ ($_ => $o{$_} // 0) } qw(failures panics timeouts queue_full unavailable in_flight)),
    };
}

# Checks one app's latency histogram: the documented bounds, cumulative counts, +Inf equal
# to the count, and the count equal to the calls the app got (requests less those it never
# saw: refused by a full queue, or the app unavailable).
sub check_histogram {
    my ($doc, $app, $what) = @_;
    my $counts = $doc->{apps}{$app};
    my $latency = $counts->{latency};
    my @buckets = @{ $latency->{buckets} };
    is_deeply [map { $_->{le_ms} } @buckets], [@bounds_ms, '+Inf'], "$what: $app: the buckets' bounds";
    my @cumulative = map { $_->{count} } @buckets;
    my @sorted = sort { $a <=> $b } @cumulative;
    is_deeply \@cumulative, \@sorted, "$what: $app: the buckets are cumulative (@cumulative)";
    is $cumulative[-1], $latency->{count}, "$what: $app: the +Inf bucket holds every call";
    is $latency->{count}, $counts->{requests} - $counts->{queue_full} - $counts->{unavailable},
        "$what: $app: the histogram counts each call of the app once (requests $counts->{requests} "
        . "- queue_full $counts->{queue_full} - unavailable $counts->{unavailable})";
    cmp_ok $latency->{sum_seconds}, '>=', 0, "$what: $app: the sum is a time";
}

# --- Prometheus -----------------------------------------------------------------------

# Parses Prometheus text with prometheus_client's parser; returns its families.
sub parse_prometheus {
    my ($text, $dir) = @_;
    my $file = "$dir/metrics.txt";
    write_file($file, $text);
    open my $out, '-|', $python, '-c', $parser_script, $file or die "cannot run $python: $!";
    local $/;
    my $parsed = <$out>;
    close $out;
    return undef if $? || !$parsed;
    return $json->decode($parsed);
}

# The rules of the text format that a lenient parser lets through: each family's HELP and
# TYPE once, before its samples, its samples together, no series twice. Returns the
# problems found.
sub format_problems {
    my $text = shift;
    my (@problems, %typed, %seen_family, %series);
    my $current = '';
    my $family_of = sub {
        my $name = shift;
        for my $suffix ('', qw(_bucket _sum _count)) {
            (my $base = $name) =~ s/\Q$suffix\E\z// or next;
            return $base if $typed{$base} && ($suffix eq '' || $typed{$base} eq 'histogram');
        }
        return undef;
    };
    for my $line (split /\n/, $text) {
        if ($line =~ /^# TYPE (\S+) (\S+)$/) {
            push @problems, "second TYPE for $1" if $typed{$1};
            $typed{$1} = $2;
            push @problems, "family $1 appears twice" if $seen_family{$1}++;
            $current = $1;
        } elsif ($line =~ /^# HELP (\S+) /) {
            push @problems, "HELP of $1 after its TYPE" if $typed{$1};
        } elsif ($line =~ /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/) {
            my ($name, $labels, $value) = ($1, $2 // '', $3);
            my $family = $family_of->($name);
            if (!defined $family) {
                push @problems, "$name has no TYPE before it";
            } elsif ($family ne $current) {
                push @problems, "$name is not with the rest of family $family";
            }
            push @problems, "$name$labels appears twice" if $series{"$name$labels"}++;
            push @problems, "$name$labels has value $value" unless $value =~ /^-?\d+(?:\.\d+)?(?:e[-+]?\d+)?$/i;
        } elsif ($line ne '') {
            push @problems, "not a line of the format: $line";
        }
    }
    push @problems, 'no newline at the end' unless $text =~ /\n\z/;
    return @problems;
}

# The value of sample $name with labels %labels among the parsed families.
sub sample {
    my ($families, $name, %labels) = @_;
    my $want = $json->encode(\%labels);
    for my $family (@$families) {
        for my $s (@{ $family->{samples} }) {
            return $s->[2] if $s->[0] eq $name && $json->encode($s->[1]) eq $want;
        }
    }
    return undef;
}

# Checks the Prometheus answer against the JSON document taken at the same quiet moment.
sub check_prometheus {
    my ($server, $c, $doc, $what) = @_;
    is $c->{status}, 200, "$what: 200";
    is $c->{headers}{'content-type'}, 'text/plain; version=0.0.4; charset=utf-8',
        "$what: the Content-Type of text exposition 0.0.4";
    is_deeply [format_problems($c->{body})], [], "$what: one block per family, HELP and TYPE first, no duplicate series";
    if (!$python) {
        SKIP: { skip "$what: $no_parser", 1 }
        return;
    }
    my $families = parse_prometheus($c->{body}, $server->{prefix});
    ok $families, "$what: prometheus_client's parser reads it" or return diag $c->{body};
    my %types = map { ($_->{name} => $_->{type}) } @$families;
    # The parser names a counter's family without its _total.
    is_deeply \%types, {
        gateway_app_responses => 'counter',
        (map { ("gateway_app_$_" => 'counter') } qw(failures panics timeouts queue_full unavailable)),
        gateway_app_in_flight => 'gauge',
        gateway_app_call_duration_seconds => 'histogram',
        gateway_thread_pool_queued => 'gauge',
        gateway_thread_pool_running => 'gauge',
        gateway_thread_pool_completed => 'counter',
        gateway_thread_pool_rejected => 'counter',
    }, "$what: the families and their types";
    my @missing = grep { !length $_->{documentation} } @$families;
    is_deeply [map { $_->{name} } @missing], [], "$what: every family has a HELP text";

    my (@differ, $checked);
    my $compare = sub {
        my ($name, $labels, $want) = @_;
        my $got = sample($families, $name, %$labels);
        $checked++;
        my $same = defined $got && abs($got - $want) < 1e-6;
        push @differ, "$name" . $json->encode($labels) . ': ' . ($got // 'missing') . ", JSON says $want"
            unless $same;
    };
    # One series per mount, labelled by app and location, as the JSON's locations.
    for my $app (sort keys %{ $doc->{apps} }) {
      for my $location (sort keys %{ $doc->{apps}{$app}{locations} }) {
        my $counts = $doc->{apps}{$app}{locations}{$location};
        my %mount = (app => $app, location => $location);
        $compare->('gateway_app_responses_total', { %mount, class => $_ }, $counts->{responses}{$_})
            for qw(1xx 2xx 3xx 4xx 5xx);
        $compare->("gateway_app_${_}_total", \%mount, $counts->{$_})
            for qw(failures panics timeouts queue_full unavailable);
        $compare->('gateway_app_in_flight', \%mount, $counts->{in_flight});
        for my $bucket (@{ $counts->{latency}{buckets} }) {
            my $le = $bucket->{le_ms} eq '+Inf' ? '+Inf' : $bucket->{le_ms} / 1000;
            $compare->('gateway_app_call_duration_seconds_bucket', { %mount, le => "$le" }, $bucket->{count});
        }
        $compare->('gateway_app_call_duration_seconds_count', \%mount, $counts->{latency}{count});
        $compare->('gateway_app_call_duration_seconds_sum', \%mount, $counts->{latency}{sum_seconds});
      }
    }
    for my $pool (sort keys %{ $doc->{thread_pools} }) {
        my $p = $doc->{thread_pools}{$pool};
        $compare->("gateway_thread_pool_$_", { pool => $pool }, $p->{$_}) for qw(queued running);
        $compare->("gateway_thread_pool_${_}_total", { pool => $pool }, $p->{$_}) for qw(completed rejected);
    }
    my $samples = 0;
    $samples += @{ $_->{samples} } for @$families;
    is $samples, $checked, "$what: no sample beyond those of the JSON ($checked)";
    is_deeply \@differ, [], "$what: every sample has the JSON's value";
}

# --- the access log -------------------------------------------------------------------

# The access log's entries: pid, status, app, time, app status, uri.
sub access_entries {
    my $server = shift;
    my @entries;
    for (split /\n/, slurp($server->{access})) {
        my ($pid, $status, $app, $t, $s, $uri) = /^(\d+) (\d{3}) app=(\S+) t=(\S+) s=(\S+) (\S+)$/
            or do { push @entries, { bad => $_ }; next };
        push @entries, { pid => $pid, status => $status, app => $app, time => $t, app_status => $s, uri => $uri };
    }
    return @entries;
}

# ======================================================================================
# The main server: two workers, several apps, a sequence of requests with known outcomes.
# ======================================================================================

my %main_conf = (
    workers => 2,
    http => '    gateway_status_zone gateway 1m;',
    server => <<"CONF",
        location = /plain {
            return 200 "plain\\n";
        }
        location /hello {
            gateway_app $apps/libhello.so;
        }
        # The stream example on the event loop, with a slow-request threshold.
        location /stream/ {
            gateway_app $apps/libstream.so;
            gateway_slow_request 300ms;
        }
        # The same app on a thread pool: the same app, so the same counters.
        location /pool/ {
            gateway_app $apps/libstream.so;
            gateway_thread_pool default;
        }
        location /deadline/ {
            gateway_app $apps/libstream.so;
            gateway_thread_pool default;
            gateway_timeout 1s;
        }
        location /greet/ {
            gateway_app $apps/libgreeting.so;
            gateway_app_param greeting "Hi";
        }
        # The same app without its required setting: it fails to start, the location answers 503.
        location /nogreet/ {
            gateway_app $apps/libgreeting.so;
        }
        location = /status {
            gateway_status;
            add_header X-Pid \$pid always;
        }
CONF
);
my $server = start_nginx(%common, %main_conf);

# [count, uri, nginx status]
my @sequence = (
    [12, '/hello', 200],
    [4, '/stream/status?code=404', 404],
    [3, '/stream/status?code=302', 302],
    [2, '/stream/status?code=503', 503],
    [2, '/stream/panic', 500],
    [2, '/stream/fail?after=1', 200],
    [3, '/stream/lines?n=3', 200],
    [1, '/stream/sleep?ms=400', 200],
    [5, '/pool/sleep?ms=0', 200],
    [1, '/pool/panic', 500],
    [3, '/greet/x', 200],
    [2, '/nogreet/x', 503],
    [3, '/plain', 200],
);
my %expected = (
    hello => app_counters('2xx' => 12),
    # 2xx: fail 2 (the status was 200 before the stream broke), lines 3, sleep 1, pool 5.
    stream => app_counters('2xx' => 11, '3xx' => 3, '4xx' => 4, '5xx' => 2 + 2 + 1,
                           failures => 2, panics => 3),
    greeting => app_counters('2xx' => 3, '5xx' => 2, unavailable => 2),
);
my %expected_pools = (default => { queued => 0, running => 0, completed => 6, rejected => 0 });

subtest 'a known sequence of requests over two workers' => sub {
    my @wrong;
    for my $step (@sequence) {
        my ($count, $uri, $status) = @$step;
        for (1 .. $count) {
            my $c = get($server, $uri);
            push @wrong, describe($c) . " (expected $status)" unless $c->{status} eq $status && !$c->{error};
        }
    }
    is_deeply \@wrong, [], 'every request has the expected status';
    my %pids = map { ($_->{pid} => 1) } grep { $_->{app} ne '-' } access_entries($server);
    is scalar(keys %pids), 2, 'both workers served app calls (reuseport spreads the connections): '
        . join ' ', sort keys %pids;
};

my $quiet;    # the status after the sequence, the same from any worker
subtest 'any worker answers for all, with exact sums' => sub {
    my (%bodies, %by_pid, $doc);
    for (1 .. 200) {
        my ($d, $body, $pid) = status($server);
        $doc //= $d;
        $bodies{$body}++;
        $by_pid{$pid // 'none'}++;
        last if keys %by_pid >= 2 && $_ >= 10;
    }
    is scalar(keys %by_pid), 2, 'two workers answered the status: '
        . join(', ', map { "$_ ($by_pid{$_} times)" } sort keys %by_pid);
    is scalar(keys %bodies), 1, 'every answer is the same, byte for byte'
        or diag join "\n", keys %bodies;
    $quiet = $doc;
    is_deeply [sort keys %{ $doc->{apps} }], [sort keys %expected], 'the apps, by the names their crates declare';
    is_deeply counters($doc, $_), $expected{$_}, "$_: the counts of the sequence" for sort keys %expected;
    is_deeply $doc->{thread_pools}, \%expected_pools, 'thread pool "default": 6 calls completed, none queued or running';
    check_histogram($doc, $_, 'after the sequence') for sort keys %expected;
    # Each location counts apart; an app's numbers are the sums over its locations.
    is_deeply [sort keys %{ $doc->{apps}{stream}{locations} }], ['/deadline/', '/pool/', '/stream/'],
        'stream: counted apart in each of its three locations';
    for my $app (sort keys %expected) {
        my %sum;
        for my $counts (values %{ $doc->{apps}{$app}{locations} }) {
            $sum{$_} += $counts->{$_} for qw(requests failures panics timeouts queue_full unavailable in_flight);
            $sum{"r$_"} += $counts->{responses}{$_} for qw(1xx 2xx 3xx 4xx 5xx);
            $sum{latency} += $counts->{latency}{count};
        }
        my $total = $doc->{apps}{$app};
        my %want = ((map { ($_ => $total->{$_}) } qw(requests failures panics timeouts queue_full unavailable in_flight)),
            (map { ("r$_" => $total->{responses}{$_}) } qw(1xx 2xx 3xx 4xx 5xx)), latency => $total->{latency}{count});
        is_deeply \%sum, \%want, "$app: its totals are the sums over its locations";
    }
    my $hello = $doc->{apps}{hello}{latency};
    is $hello->{buckets}[8]{count}, 12, 'hello: its 12 fast calls all took less than 1 s';
    my $stream = $doc->{apps}{stream}{latency};
    cmp_ok $stream->{buckets}[6]{count}, '<=', $stream->{count} - 1,
        'stream: the 400 ms sleep is not among the calls under 250 ms';
    is $stream->{buckets}[9]{count}, $stream->{count}, 'stream: every call took less than 2.5 s';
    cmp_ok $stream->{sum_seconds}, '>=', 0.4, 'stream: the sum includes the 400 ms sleep';
};

subtest 'JSON and Prometheus, by query or by Accept header' => sub {
    my $c = get($server, '/status');
    is $c->{headers}{'content-type'}, 'application/json', 'JSON by default, as application/json';
    is_deeply $json->decode($c->{body}), $quiet, 'the same document';
    $c = get($server, '/status', 'Accept: application/json');
    is $c->{headers}{'content-type'}, 'application/json', 'JSON for Accept: application/json';
    $c = get($server, '/status', 'Accept: */*');
    is $c->{headers}{'content-type'}, 'application/json', 'JSON for Accept: */*';
    my @prometheus = (
        [ '?format=prometheus', get($server, '/status?format=prometheus') ],
        [ 'Accept: text/plain', get($server, '/status', 'Accept: text/plain') ],
        # What a Prometheus server sends when it scrapes.
        [ "a Prometheus scrape's Accept", get($server, '/status',
            'Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,'
            . 'text/plain;version=0.0.4;q=0.5,*/*;q=0.1') ],
    );
    is $prometheus[1][1]{body}, $prometheus[0][1]{body}, 'the header and the query give the same text';
    is $prometheus[2][1]{body}, $prometheus[0][1]{body}, '... and so does a scrape';
    check_prometheus($server, $_->[1], $quiet, "Prometheus for $_->[0]") for @prometheus;
};

subtest 'the log variables in the access log' => sub {
    my @entries = access_entries($server);
    is_deeply [map { $_->{bad} } grep { $_->{bad} } @entries], [], 'every line has the log format';
    my %by_uri;
    push @{ $by_uri{$_->{uri}} }, $_ for grep { !$_->{bad} } @entries;
    my $time = qr/^\d+\.\d{3}$/;
    for my $step (@sequence) {
        my ($count, $uri, $status) = @$step;
        my @lines = @{ $by_uri{$uri} // [] };
        is scalar @lines, $count, "$uri: $count lines";
        my ($app) = $uri =~ m{^/(\w+)};
        $app = { pool => 'stream', nogreet => 'greeting', greet => 'greeting', plain => '-' }->{$app} // $app;
        # The app's own status: a panic is the module's 500, an app that did not start its 503.
        my $app_status = $app eq '-' ? '-' : $status;
        my @wrong = grep {
            $_->{status} ne $status || $_->{app} ne $app || $_->{app_status} ne $app_status
                || ($app eq '-' ? $_->{time} ne '-' : $_->{time} !~ $time)
        } @lines;
        is_deeply \@wrong, [], "$uri: \$status $status, \$gateway_app $app, \$gateway_status $app_status, "
            . ($app eq '-' ? '$gateway_app_time -' : '$gateway_app_time in seconds with 3 decimals');
    }
    my ($sleep) = @{ $by_uri{'/stream/sleep?ms=400'} };
    cmp_ok $sleep->{time}, '>=', 0.4, "a 400 ms call: \$gateway_app_time $sleep->{time} >= 0.400";
    cmp_ok $sleep->{time}, '<', 1.4, '... and well under 1.4 s';
    my @fast = grep { $_->{time} ne '-' && $_->{time} >= 1 } map { @{ $by_uri{$_->[1]} } } @sequence;
    is_deeply \@fast, [], 'no other call took a second';
    is_deeply [grep { $_->{app} ne '-' } @{ $by_uri{'/status'} }], [], 'the status location is no app call: -';
};

subtest 'the slow-request warning' => sub {
    my @slow = log_lines($server, qr/over gateway_slow_request/);
    is scalar @slow, 1, 'one warning: the 400 ms call over 300 ms, none for the fast calls'
        or diag @slow;
    like $slow[0] // '', qr{\[warn\] \d+#\d+: \*\d+ gateway: app "stream" call took (\d+\.\d{3}) s, over gateway_slow_request 0\.300 s: /stream/sleep\?ms=400 \(request $hex32\)},
        'the warning names the app, the time, the threshold, the URI and the request ID';
    my ($took) = ($slow[0] // '') =~ /call took (\d+\.\d{3}) s/;
    cmp_ok $took // 0, '>=', 0.4, "it took $took s, at least the 400 ms slept";
};

subtest 'gauges while a call runs, back to 0 after' => sub {
    my $before = status($server);
    my $c = send_request($server, '/pool/sleep?ms=3000');
    # A status document is read counter by counter, not as one snapshot: the call may start
    # between its in_flight and its pool's running being read, so both are waited for.
    my ($doc, $held) = wait_status($server, sub {
        $_[0]{thread_pools}{default}{running} == 1 && $_[0]{apps}{stream}{in_flight} == 1
    }, 5);
    ok $held, 'the pool shows the call running';
    is $doc->{apps}{stream}{in_flight}, 1, 'stream: 1 call in flight';
    is $doc->{thread_pools}{default}{queued}, 0, 'nothing queued';
    read_response($c);
    is "$c->{status} $c->{body}", "200 slept 3000 ms on the thread_pool\n", 'the call answers';
    $doc = status($server);
    is $doc->{apps}{stream}{in_flight}, 0, 'stream: in_flight is back to 0';
    is_deeply $doc->{thread_pools}{default},
        { %{ $before->{thread_pools}{default} }, completed => $before->{thread_pools}{default}{completed} + 1 },
        'the pool: one more completed, none running';
    is $doc->{apps}{stream}{responses}{'2xx'}, $before->{apps}{stream}{responses}{'2xx'} + 1, 'one more 2xx';
    is $doc->{apps}{stream}{latency}{count}, $before->{apps}{stream}{latency}{count} + 1, 'one more in the histogram';
    is $doc->{apps}{stream}{latency}{buckets}[8]{count}, $before->{apps}{stream}{latency}{buckets}[8]{count},
        '... not under 1 s';
    check_histogram($doc, 'stream', 'after a 3 s call');
    my @slow = log_lines($server, qr/over gateway_slow_request/);
    is scalar @slow, 1, 'no slow-request warning: /pool/ has no threshold';
};

subtest 'counters survive a reload (HUP), and a new app joins them' => sub {
    my $before = status($server);
    # The same zone (name and size) in a configuration that mounts one more app.
    rewrite_conf($server, %common, %main_conf, server => $main_conf{server} . <<"CONF");
        location /environ/ {
            gateway_app $apps/libenviron.so;
        }
CONF
    my @old = worker_pids($server);
    is scalar @old, 2, "two workers before the reload: @old";
    is reload($server, secs => 10), '', 'HUP: the old workers exit, new ones start';
    my ($doc, undef, $pid) = status($server);
    ok $doc->{apps}{environ}, "a new worker ($pid) answers with the new configuration";
    ($doc) = status($server);
    my %kept = %{ $doc->{apps} };
    my $environ = delete $kept{environ};
    is_deeply \%kept, $before->{apps}, 'every app keeps its counts';
    is_deeply $doc->{thread_pools}, $before->{thread_pools}, 'the pool keeps its counts';
    is_deeply counters($doc, 'environ'), app_counters(), 'environ starts at 0';
    is get($server, '/hello')->{status}, 200, 'hello serves';
    is get($server, '/environ/x')->{status}, 200, 'environ serves';
    ($doc) = wait_status($server, sub { $_[0]{apps}{environ}{requests} == 1 }, 2);
    is $doc->{apps}{hello}{responses}{'2xx'}, 13, 'hello: the 12 requests before the reload and the 1 after';
    is $doc->{apps}{hello}{latency}{count}, 13, '... in its histogram too';
    is_deeply counters($doc, 'environ'), app_counters('2xx' => 1), 'environ: 1';
    check_histogram($doc, $_, 'after the reload') for sort keys %{ $doc->{apps} };

    is reload($server, secs => 10), '', 'HUP once more, with nothing changed';
    my $after = status($server);
    is_deeply $after, $doc, 'a second reload keeps everything as it was';
};

subtest 'a timeout is counted: timeouts, a 5xx, the call, and in_flight back to 0' => sub {
    my $before = status($server);
    my $c = get($server, '/deadline/sleep?ms=1500');
    is $c->{status}, 504, 'a call past gateway_timeout 1s answers 504';
    my ($doc, $done) = wait_status($server, sub { $_[0]{apps}{stream}{in_flight} == 0 }, 5);
    ok $done, 'in_flight returns to 0 once the detached call has finished';
    is_deeply counters($doc, 'stream'), { %{ counters($before, 'stream') },
        requests => $before->{apps}{stream}{requests} + 1,
        responses => { %{ $before->{apps}{stream}{responses} }, '5xx' => $before->{apps}{stream}{responses}{'5xx'} + 1 },
        timeouts => $before->{apps}{stream}{timeouts} + 1 },
        'stream: timeouts +1, 5xx +1 (the 504), nothing else';
    my %timeouts = map { ($_ => $doc->{apps}{stream}{locations}{$_}{timeouts}
        - ($before->{apps}{stream}{locations}{$_}{timeouts} // 0)) } keys %{ $doc->{apps}{stream}{locations} };
    is_deeply \%timeouts, { '/deadline/' => 1, '/pool/' => 0, '/stream/' => 0 },
        'the timeout is counted in /deadline/, the location it happened in';
    is $doc->{thread_pools}{default}{completed}, $before->{thread_pools}{default}{completed} + 1,
        'the pool completed the detached call';
    is $doc->{thread_pools}{default}{running}, 0, '... and runs nothing';
    check_histogram($doc, 'stream', 'after a timeout');
    # The timed-out call is a call of the app, and the slowest kind: left out, it would hide
    # the tail that p99 is for.
    is $doc->{apps}{stream}{latency}{count}, $before->{apps}{stream}{latency}{count} + 1,
        'the timed-out call is in the histogram';
    is $doc->{apps}{stream}{latency}{buckets}[7]{count}, $before->{apps}{stream}{latency}{buckets}[7]{count},
        '... not among the calls under 500 ms';
    my ($entry) = grep { $_->{uri} eq '/deadline/sleep?ms=1500' } access_entries($server);
    is $entry->{app_status}, 504, '$gateway_status 504';
    like $entry->{time}, qr/^1\.\d{3}$/, "\$gateway_app_time $entry->{time}: the 1 s the module waited";
    is scalar(log_lines($server, qr/call exceeded gateway_timeout/)), 1, 'the timeout is logged once';
};

subtest 'a call that times out while its worker shuts down (reload)' => sub {
    my $before = status($server);
    my $c = send_request($server, '/deadline/sleep?ms=2500');
    my (undef, $running) = wait_status($server, sub { $_[0]{thread_pools}{default}{running} == 1 }, 5);
    ok $running, 'the call runs on the pool';
    # The old worker answers 504 after 1 s while shutting down, then must wait for the
    # detached call, as it waits for a call in flight on `nginx -s quit`.
    is reload($server, secs => 15), '', 'HUP: the old workers exit, new ones start';
    read_response($c);
    is $c->{status}, 504, 'the call answers 504';
    my ($doc, $done) = wait_status($server, sub {
        $_[0]{apps}{stream}{in_flight} == 0 && $_[0]{thread_pools}{default}{running} == 0 }, 5);
    ok $done, 'in_flight and the pool\'s running are back to 0'
        or diag "in_flight $doc->{apps}{stream}{in_flight}, running $doc->{thread_pools}{default}{running}";
    is $doc->{apps}{stream}{timeouts}, $before->{apps}{stream}{timeouts} + 1, 'timeouts +1';
    is $doc->{apps}{stream}{responses}{'5xx'}, $before->{apps}{stream}{responses}{'5xx'} + 1, '5xx +1';
    my %timeouts = map { ($_ => $doc->{apps}{stream}{locations}{$_}{timeouts}
        - ($before->{apps}{stream}{locations}{$_}{timeouts} // 0)) } keys %{ $doc->{apps}{stream}{locations} };
    is_deeply \%timeouts, { '/deadline/' => 1, '/pool/' => 0, '/stream/' => 0 },
        'the timeout is counted in /deadline/, the location it happened in';
    is $doc->{thread_pools}{default}{completed}, $before->{thread_pools}{default}{completed} + 1,
        'the pool completed the detached call';
    is_deeply [log_lines($server, qr/\[alert\]/)], [], 'no [alert] (such as "open socket ... left in connection")';
    my @entries = grep { $_->{uri} eq '/deadline/sleep?ms=2500' } access_entries($server);
    is_deeply [map { "$_->{status} $_->{app_status}" } @entries], ['504 504'], 'the 504 is in the access log';
};

finish($server, 'the main server', ok => $handler_panic);

# ======================================================================================
# A full queue: one worker, a pool of one thread with one queue slot.
# ======================================================================================

# A server of one worker with the thread pool $pool declares, the locations in $locations,
# and the status at /status.
sub pool_server {
    my ($pool, $locations) = @_;
    return start_nginx(%common, main => $pool, http => '    gateway_status_zone gateway 1m;',
        server => $locations . <<"CONF");
        location = /status {
            gateway_status;
        }
CONF
}

subtest 'a full queue is counted: queue_full, the pool\'s rejected, 503s, in_flight back to 0' => sub {
    my $server = pool_server('thread_pool tiny threads=1 max_queue=1;', <<"CONF");
        location /tiny/ {
            gateway_app $apps/libstream.so;
            gateway_thread_pool tiny;
        }
CONF
    my $running = send_request($server, '/tiny/sleep?ms=2000');
    my (undef, $ok) = wait_status($server, sub { $_[0]{thread_pools}{tiny}{running} == 1 }, 5);
    ok $ok, 'the first call runs on the only thread';
    my $queued = send_request($server, '/tiny/sleep?ms=2000');
    my $doc;
    # As above: both counters waited for, the document being no snapshot.
    ($doc, $ok) = wait_status($server, sub {
        $_[0]{thread_pools}{tiny}{queued} == 1 && $_[0]{apps}{stream}{in_flight} == 2
    }, 5);
    ok $ok, 'the second waits in the only queue slot';
    is $doc->{apps}{stream}{in_flight}, 2, 'stream: 2 calls in flight (one running, one queued)';
    my @refused = map { get($server, '/tiny/sleep?ms=0') } 1 .. 2;
    is_deeply [map { $_->{status} } @refused], [503, 503], 'two more are refused: 503';
    read_response($_) for $running, $queued;
    is_deeply [map { $_->{status} } $running, $queued], [200, 200], 'the first two answer 200';
    ($doc, $ok) = wait_status($server, sub { $_[0]{apps}{stream}{in_flight} == 0 }, 5);
    ok $ok, 'in_flight returns to 0' or diag "in_flight: $doc->{apps}{stream}{in_flight}";
    is_deeply counters($doc, 'stream'), app_counters('2xx' => 2, '5xx' => 2, queue_full => 2),
        'stream: 2 answered, 2 refused (5xx, queue_full)';
    is_deeply $doc->{thread_pools}{tiny}, { queued => 0, running => 0, completed => 2, rejected => 2 },
        'pool "tiny": 2 completed, 2 rejected';
    check_histogram($doc, 'stream', 'after a full queue');
    my @entries = grep { $_->{uri} eq '/tiny/sleep?ms=0' } access_entries($server);
    is_deeply [map { "$_->{status} $_->{app} $_->{app_status}" } @entries],
        ['503 stream 503', '503 stream 503'], 'the refused calls log $gateway_status 503';
    my @times = map { $_->{time} } @entries;
    is scalar(grep { /^0\.\d{3}$/ } @times), 2, "... and a \$gateway_app_time under a second: @times";
    finish($server, 'a full queue');
};

subtest 'a call whose deadline passes in the queue: 504, and the app never runs it' => sub {
    my $server = pool_server('thread_pool one threads=1;', <<"CONF");
        location /one/ {
            gateway_app $apps/libstream.so;
            gateway_thread_pool one;
            gateway_timeout 1s;
        }
CONF
    my $running = send_request($server, '/one/sleep?ms=2500');
    my (undef, $ok) = wait_status($server, sub { $_[0]{thread_pools}{one}{running} == 1 }, 5);
    ok $ok, 'the first call runs on the only thread';
    my $queued = get($server, '/one/sleep?ms=0');
    is $queued->{status}, 504, 'the call queued behind it answers 504 at its deadline';
    read_response($running);
    is $running->{status}, 504, 'the running one too (it sleeps 2.5 s)';
    my $doc;
    ($doc, $ok) = wait_status($server, sub { $_[0]{apps}{stream}{in_flight} == 0 }, 5);
    ok $ok, 'in_flight returns to 0';
    is_deeply $doc->{thread_pools}{one}, { queued => 0, running => 0, completed => 1, rejected => 0 },
        'pool "one": only the call that started completed; the timed-out queued one was never run';
    is $doc->{apps}{stream}{timeouts}, 2, 'stream: 2 timeouts';
    finish($server, 'deadline in the queue');
};

# ======================================================================================
# Configuration errors, with nginx -t.
# ======================================================================================

subtest 'nginx -t: gateway_status needs a zone big enough' => sub {
    my $status_location = <<"CONF";
        location = /status {
            gateway_status;
        }
CONF
    my $conf = write_conf(%common, server => $status_location);
    my ($status, $output) = nginx_t($conf);
    isnt $status, 0, 'gateway_status without gateway_status_zone: nginx -t fails';
    like $output, qr/\[emerg\] ${pid_prefix}gateway_status needs a gateway_status_zone in the http block, e\.g\. "gateway_status_zone gateway 1m;" in \Q$conf->{conf}\E:\d+\n/,
        '... saying what to add' or diag $output;

    $conf = write_conf(%common, http => '    gateway_status_zone gateway 8k;', server => $status_location);
    ($status, $output) = nginx_t($conf);
    isnt $status, 0, 'a zone of 8k: nginx -t fails';
    like $output, qr/\[emerg\] ${pid_prefix}gateway_status_zone "gateway" needs a size of at least \d+k in \Q$conf->{conf}\E:\d+\n/,
        '... saying how much it needs' or diag $output;
    my ($least) = $output =~ /needs a size of at least (\d+)k/;
    SKIP: {
        skip 'no size in the message', 2 unless $least;
        $conf = write_conf(%common, http => "    gateway_status_zone gateway ${least}k;", server => $status_location);
        ($status, $output) = nginx_t($conf);
        is $status, 0, "a zone of exactly ${least}k passes nginx -t" or diag $output;
        $conf = write_conf(%common, http => '    gateway_status_zone gateway ' . ($least - 1) . 'k;', server => $status_location);
        ($status, $output) = nginx_t($conf);
        isnt $status, 0, 'one k less fails';
    }

    $conf = write_conf(%common, http => "    gateway_status_zone gateway 1m;\n    gateway_status_zone other 1m;",
                       server => $status_location);
    ($status, $output) = nginx_t($conf);
    isnt $status, 0, 'two zones: nginx -t fails';
    like $output, qr/\[emerg\] ${pid_prefix}"gateway_status_zone" directive is duplicate in \Q$conf->{conf}\E:\d+\n/,
        '... as a duplicate' or diag $output;

    $conf = write_conf(%common, http => '    gateway_status_zone gateway 1m;', server => $status_location);
    ($status, $output) = nginx_t($conf);
    is $status, 0, 'with a zone of 1m, nginx -t passes' or diag $output;
};

done_testing;
