# examples/notes' whole flow through nginx, as a user has it: log in (a session in an
# encrypted cookie), see the flashed welcome, add a note, see it saved, attach a file (a
# multipart upload) and download it (sent by nginx from the file), log out. First over
# plain HTTP with two workers, the session cookie kept by hand: a session made through one
# worker is honoured by the other (the key is the location's secret_key, not a worker's
# memory), and a tampered cookie is no session. Then in a real headless browser (Debian's
# chromium, driven through chromedriver over WebDriver: Test::Gateway::Browser), clicking
# through the pages. The browser half is skipped without chromedriver, unless
# TEST_NGINX_BROWSER is set (scripts/test sets it), when its absence fails.

use strict;
use warnings;
use FindBin ();
use lib "$FindBin::Bin/lib";
use HTTP::Tiny ();
use Test::More;
use Test::Gateway::Browser qw(chromedriver start_browser);
use Test::Gateway::Server qw(apps_dir patience start_nginx finish worker_pids);

my $apps = apps_dir() or plan skip_all => 'TEST_NGINX_APPS is not set';
my $examples = $ENV{TEST_NGINX_EXAMPLES} or plan skip_all => 'TEST_NGINX_EXAMPLES is not set';
my $http = HTTP::Tiny->new(keep_alive => 0, timeout => 15 * patience(), max_redirect => 0);

sub server {
    return start_nginx(name => 'gateway-031', workers => 2, listen => 'reuseport',
        main => 'thread_pool notes threads=2;', server => <<"CONF");
        location /notes/ {
            gateway_app $apps/libnotes.so;
            gateway_thread_pool notes;
            gateway_app_param templates $examples/notes/templates;
            gateway_app_param secret_key "a test key of thirty-two bytes..";
            gateway_app_param title "Flow notes";
            add_header X-Worker \$pid always;
        }
CONF
}

# A client that keeps the cookies nginx sets, as a browser does (names and values only:
# every cookie here is the app's, for its own path).
sub client {
    my $server = shift;
    my %jar;
    return sub {
        my ($method, $path, $form) = @_;
        my %headers;
        $headers{Cookie} = join '; ', map { "$_=$jar{$_}" } sort keys %jar if %jar;
        my %options = (headers => \%headers);
        if ($form) {
            $headers{'Content-Type'} = 'application/x-www-form-urlencoded';
            $options{content} = $http->www_form_urlencode($form);
        }
        my $r = $http->request($method, "http://127.0.0.1:$server->{port}$path", \%options);
        my $set = $r->{headers}{'set-cookie'} // [];
        for my $cookie (ref $set ? @$set : $set) {
            my ($name, $value, $attributes) = $cookie =~ /^([^=]+)=([^;]*)(.*)$/ or next;
            if ($attributes =~ /Max-Age=0\b/i || $value eq '') { delete $jar{$name} }
            else { $jar{$name} = $value }
        }
        $r->{jar} = \%jar;
        return $r;
    };
}

subtest 'over HTTP, across two workers: log in, add a note, log out' => sub {
    my $server = server();
    my $get = client($server);

    my $r = $get->(POST => '/notes/', { text => 'before logging in' });
    is "$r->{status} $r->{headers}{location}", '303 /notes/login', 'adding without a login: sent to log in';
    like $get->(GET => '/notes/login')->{content}, qr{<p class="flash error">Log in to add notes\.</p>},
        '... told why';

    $r = $get->(POST => '/notes/login', { name => 'Ada' });
    is "$r->{status} $r->{headers}{location}", '303 /notes/', 'logging in redirects to the notes';
    my $cookie = $r->{jar}{session} // '';
    ok length $cookie, 'a session cookie was set';
    my $set = join ' ', map { ref $_ ? @$_ : $_ } $r->{headers}{'set-cookie'};
    like $set, qr/HttpOnly/, '... HttpOnly';
    like $set, qr{Path=/notes\b}, '... for the mount point';
    unlike $cookie, qr/Ada/, '... whose content cannot be read';

    # Every later request goes to whichever worker the kernel picks: each must know Ada.
    my %workers;
    $r = $get->(GET => '/notes/');
    $workers{ $r->{headers}{'x-worker'} }++;
    like $r->{content}, qr{<p class="flash info">Welcome, Ada\.</p>}, 'the welcome is flashed';
    like $r->{content}, qr{Hello, Ada\.}, 'the page knows who is logged in';
    for (1 .. 40) {
        $r = $get->(GET => '/notes/');
        $workers{ $r->{headers}{'x-worker'} }++;
        unlike $r->{content}, qr{Welcome, Ada}, 'the welcome shows once' or last;
        like $r->{content}, qr{Hello, Ada\.}, "request $_: logged in, worker $r->{headers}{'x-worker'}" or last;
        last if keys %workers > 1;
    }
    is scalar(keys %workers), 2, 'both workers served the session (' . join(', ', sort keys %workers) . ')';

    $r = $get->(POST => '/notes/', { text => 'milk & <eggs>' });
    is "$r->{status} $r->{headers}{location}", '303 /notes/', 'a note added';
    $r = $get->(GET => '/notes/');
    like $r->{content}, qr{<p class="flash info">Note saved\.</p>}, 'its flash';
    like $r->{content}, qr{<li id="note-\d+"><span class="text">milk &amp; &lt;eggs&gt;</span>},
        'the note, escaped';

    # One character of the sealed value changed: it no longer decrypts.
    my $tampered = $cookie =~ s/.$/$& eq 'A' ? 'B' : 'A'/er;
    my $forged = $http->get("http://127.0.0.1:$server->{port}/notes/",
        { headers => { Cookie => "session=$tampered" } });
    like $forged->{content}, qr{Hello, stranger\.}, 'a tampered session cookie is no session';

    $r = $get->(POST => '/notes/logout');
    is "$r->{status} $r->{headers}{location}", '303 /notes/', 'logging out redirects';
    $r = $get->(GET => '/notes/');
    like $r->{content}, qr{<p class="flash info">Logged out\.</p>.*Hello, stranger\.}s, 'logged out, told so';
    finish($server, 'http flow');
};

subtest 'in a headless browser: log in, add a note, attach a file, log out' => sub {
    plan skip_all => 'no chromedriver (apt-get install chromium chromium-driver)'
        unless chromedriver() || $ENV{TEST_NGINX_BROWSER};
    my $server = server();
    my $browser = start_browser() or BAIL_OUT('TEST_NGINX_BROWSER is set but chromedriver is missing');
    my $base = "http://127.0.0.1:$server->{port}/notes/";
    $browser->visit($base);
    is $browser->title, 'Flow notes', 'the notes page';
    like $browser->text('body'), qr/Hello, stranger\./, 'nobody is logged in';

    $browser->click_through('a.login');
    like $browser->url, qr{/notes/login$}, 'the login link leads to the login page';
    $browser->fill('input[name=name]', 'Grace');
    $browser->click_through('.login-form button');
    is $browser->url, $base, 'after logging in, back on the notes';
    is $browser->text('.flash.info'), 'Welcome, Grace.', 'the welcome is flashed';
    like $browser->text('body'), qr/Hello, Grace\./, 'the page knows who is logged in';

    $browser->fill('input[name=text]', 'call <Ada>');
    $browser->click_through('form.add-note button');
    is $browser->text('.flash.info'), 'Note saved.', 'saving a note is flashed';
    ok grep({ $_ eq 'call <Ada>' } $browser->texts('li .text')), 'the note is listed, as typed';

    $browser->visit($base);
    is scalar($browser->texts('.flash')), 0, 'the flash showed once';

    my $upload = "$server->{prefix}/shopping list.txt";
    open my $fh, '>', $upload or die "$upload: $!";
    print $fh "milk\neggs\n";
    close $fh;
    $browser->fill('form.attach input[type=file]', $upload);
    $browser->click_through('form.attach button');
    is $browser->text('.flash.info'), 'Attached shopping list.txt.', 'attaching a file is flashed';
    is $browser->text('a.attachment'), 'shopping list.txt', 'the note links its attachment';
    my $href = $browser->attribute('a.attachment', 'href');
    my $download = $http->get($href);
    is "$download->{status} $download->{content}", "200 milk\neggs\n", 'the download is the file';
    is $download->{headers}{'content-disposition'}, 'attachment; filename="shopping list.txt"',
        '... as an attachment with its name';

    $browser->click_through('form.logout button');
    is $browser->text('.flash.info'), 'Logged out.', 'logging out is flashed';
    like $browser->text('body'), qr/Hello, stranger\./, 'nobody is logged in';

    $browser->visit("${base}nowhere");
    like $browser->text('.not-found'), qr/Nothing here/, 'a missing page is the app\'s 404 page';
    $browser->quit;
    finish($server, 'browser flow');
};

done_testing;
