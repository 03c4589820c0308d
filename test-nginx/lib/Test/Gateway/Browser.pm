package Test::Gateway::Browser;

# A real headless browser for the suites: Debian's Chromium, driven through its chromedriver
# over the W3C WebDriver protocol (JSON over HTTP), with just the verbs a user's flow needs:
# open a page, fill a field, click, read text. No Selenium: the protocol is small and
# HTTP::Tiny and JSON::PP speak it.
#
#   my $browser = start_browser() or plan skip_all => '...';
#   $browser->visit("http://127.0.0.1:$port/notes/");
#   $browser->fill('input[name=text]', 'milk');
#   $browser->click_through('button[type=submit]');   # click() for what stays on the page
#   like $browser->text('.flash'), qr/saved/;
#   $browser->quit;
#
# chromedriver is TEST_NGINX_CHROMEDRIVER, else /usr/bin/chromedriver; the browser
# TEST_NGINX_CHROMIUM, else /usr/bin/chromium.

use strict;
use warnings;
use Carp qw(croak);
use Exporter qw(import);
use File::Temp qw(tempdir);
use HTTP::Tiny ();
use IO::Socket::INET ();
use JSON::PP qw(decode_json encode_json);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw(chromedriver start_browser);

# The key under which WebDriver returns an element's reference.
my $ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';

sub chromedriver {
    my $driver = $ENV{TEST_NGINX_CHROMEDRIVER} // '/usr/bin/chromedriver';
    return -x $driver ? $driver : undef;
}

sub free_port {
    return IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1:0')->sockport;
}

# Starts chromedriver on a free loopback port and opens a headless session in a fresh profile;
# undef when there is no chromedriver.
sub start_browser {
    my $driver = chromedriver() or return;
    my $dir = tempdir('gateway-browser-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $port = free_port();
    my $pid = fork // croak "fork: $!";
    if (!$pid) {
        open STDOUT, '>', "$dir/chromedriver.log" or die "chromedriver.log: $!";
        open STDERR, '>&', \*STDOUT or die "stderr: $!";
        exec $driver, "--port=$port", '--allowed-ips=127.0.0.1' or die "exec $driver: $!";
    }
    my $self = bless {
        base => "http://127.0.0.1:$port", pid => $pid, dir => $dir,
        http => HTTP::Tiny->new(timeout => 60),
    }, __PACKAGE__;
    my $deadline = time + 30;
    until (eval { $self->call(GET => '/status')->{ready} }) {
        croak "chromedriver did not start: see $dir/chromedriver.log" if time > $deadline;
        sleep 0.1;
    }
    my $session = $self->call(POST => '/session', {
        capabilities => { alwaysMatch => {
            browserName => 'chrome',
            'goog:chromeOptions' => {
                binary => $ENV{TEST_NGINX_CHROMIUM} // '/usr/bin/chromium',
                # No sandbox: tests may run as root, where Chromium refuses one.
                args => ['--headless=new', '--no-sandbox', '--disable-gpu',
                    '--disable-dev-shm-usage', "--user-data-dir=$dir/profile"],
            },
        } },
    });
    $self->{session} = "/session/$session->{sessionId}";
    return $self;
}

# One WebDriver command; its value, or a croak with WebDriver's error.
sub call {
    my ($self, $method, $path, $body) = @_;
    my %options = defined $body
        ? (headers => { 'Content-Type' => 'application/json' }, content => encode_json($body))
        : ();
    my $r = $self->{http}->request($method, "$self->{base}$path", \%options);
    my $reply = eval { decode_json($r->{content}) }
        or croak "WebDriver $method $path: $r->{status} $r->{content}";
    my $value = $reply->{value};
    croak "WebDriver $method $path: $value->{error}: $value->{message}"
        if ref $value eq 'HASH' && $value->{error};
    return $value;
}

sub command {
    my ($self, $method, $path, $body) = @_;
    return $self->call($method, "$self->{session}$path", $body);
}

sub visit {
    my ($self, $url) = @_;
    $self->command(POST => '/url', { url => $url });
}

sub url { $_[0]->command(GET => '/url') }
sub title { $_[0]->command(GET => '/title') }
sub source { $_[0]->command(GET => '/source') }

# The first element matching a CSS selector; croaks if there is none.
sub element {
    my ($self, $css) = @_;
    return $self->command(POST => '/element', { using => 'css selector', value => $css })->{$ELEMENT};
}

# Every element matching a CSS selector, as their texts.
sub texts {
    my ($self, $css) = @_;
    my $found = $self->command(POST => '/elements', { using => 'css selector', value => $css });
    return map { $self->command(GET => "/element/$_->{$ELEMENT}/text") } @$found;
}

sub text {
    my ($self, $css) = @_;
    return $self->command(GET => '/element/' . $self->element($css) . '/text');
}

# An element's attribute or property (an <a>'s href is the absolute URL).
sub attribute {
    my ($self, $css, $name) = @_;
    return $self->command(GET => '/element/' . $self->element($css) . "/property/$name");
}

# Types $value into a field; for a file input, $value is a path to upload.
sub fill {
    my ($self, $css, $value) = @_;
    my $element = $self->element($css);
    $self->command(POST => "/element/$element/clear", {});
    $self->command(POST => "/element/$element/value", { text => $value });
}

sub click {
    my ($self, $css) = @_;
    $self->command(POST => '/element/' . $self->element($css) . '/click', {});
}

# Clicks what leads to another page (a link, a form's button) and waits until that page has
# replaced this one and loaded: WebDriver's click does not always wait for a navigation a
# form submission starts.
sub click_through {
    my ($self, $css) = @_;
    my $old = $self->element('html');
    $self->click($css);
    my $deadline = time + 30;
    # The old page's root goes stale once the new page is there.
    while (eval { $self->command(GET => "/element/$old/name"); 1 }) {
        croak "clicking $css led to no new page in 30 s" if time > $deadline;
        sleep 0.02;
    }
    until ($self->command(POST => '/execute/sync',
            { script => 'return document.readyState', args => [] }) eq 'complete') {
        croak "the page after clicking $css did not load in 30 s" if time > $deadline;
        sleep 0.02;
    }
}

sub quit {
    my $self = shift;
    eval { $self->command(DELETE => '') } if $self->{session};
    delete $self->{session};
    if ($self->{pid}) {
        kill 'TERM', $self->{pid};
        my $deadline = time + 10;
        sleep 0.05 while waitpid($self->{pid}, WNOHANG) == 0 && time < $deadline;
        kill 'KILL', $self->{pid} if kill 0, $self->{pid};
        delete $self->{pid};
    }
}

sub DESTROY { $_[0]->quit }

1;
