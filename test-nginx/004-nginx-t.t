# `nginx -t` itself, the operator's check before a reload: a bad app library makes it exit
# non-zero with an [emerg] naming the library and the nginx.conf line, and a good one passes.
# Uses the Test::Nginx environment (TEST_NGINX_BINARY, TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_APPS) but runs nginx -t directly instead of starting a server.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);

my $nginx = $ENV{TEST_NGINX_BINARY} || 'nginx';
my $apps = $ENV{TEST_NGINX_APPS} or plan skip_all => 'TEST_NGINX_APPS is not set';
my @modules = split ' ', $ENV{TEST_NGINX_LOAD_MODULES} || '';

# Returns (exit status, combined output) of `nginx -t` on a config mounting $library at /app.
sub nginx_t {
    my ($library) = @_;
    my $prefix = tempdir(CLEANUP => 1);
    mkdir "$prefix/$_" for qw(conf logs);
    my $conf = "$prefix/conf/nginx.conf";
    my $text = join '', map { "load_module $_;\n" } @modules;
    $text .= <<"CONF";
error_log logs/error.log;
pid logs/nginx.pid;
events {}
http {
    access_log off;
    client_body_temp_path $prefix/body;
    proxy_temp_path $prefix/proxy;
    fastcgi_temp_path $prefix/fastcgi;
    uwsgi_temp_path $prefix/uwsgi;
    scgi_temp_path $prefix/scgi;
    server {
        listen 127.0.0.1:1;
        location /app {
            gateway_app $library;
        }
    }
}
CONF
    open my $fh, '>', $conf or die "cannot write $conf: $!";
    print $fh $text;
    close $fh;
    my $line = 1 + (() = substr($text, 0, index($text, 'gateway_app')) =~ /\n/g);
    my $output = `'$nginx' -p '$prefix/' -c conf/nginx.conf -t 2>&1`;
    return ($? >> 8, $output, "$conf:$line");
}

my ($status, $output) = nginx_t("$apps/libhello.so");
is $status, 0, 'a good app passes nginx -t' or diag $output;

for my $case (
    [ 'missing library',   'libdoes_not_exist.so', qr/cannot open app library "[^"]*libdoes_not_exist\.so": No such file or directory/ ],
    [ 'no entry symbol',   'libno_entry.so',       qr/"[^"]*libno_entry\.so" is not a gateway app/ ],
    [ 'wrong ABI version', 'libabi_mismatch.so',   qr/"[^"]*libabi_mismatch\.so" was built for gateway ABI 2, this module speaks ABI 1/ ],
) {
    my ($what, $library, $message) = @$case;
    my ($status, $output, $where) = nginx_t("$apps/$library");
    isnt $status, 0, "$what: nginx -t fails";
    like $output, qr/\[emerg\] .*$message.* in \Q$where\E\n/, "$what: [emerg] names the library and $where"
        or diag $output;
    like $output, qr/test failed/, "$what: nginx -t says the test failed";
}

done_testing;
