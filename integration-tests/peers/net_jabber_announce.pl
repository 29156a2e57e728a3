#!/usr/bin/perl
# Announcements end to end with a real third-party client library: the
# Net::Jabber Perl library (Debian libnet-jabber-perl, on Net::XMPP and
# XML::Stream), as a jabberd 1.4 admin would have used it.
#
# Starts the real `switchboard` binary on a temporary home (port 0) with
# admin@localhost as the host's admin, creates admin, alice and bob, and
# checks with Net::Jabber::Client sessions (STARTTLS, certificate verified,
# SASL PLAIN inside TLS) that:
#   * alice, not an admin, sending to localhost/announce/online gets a
#     `forbidden` error;
#   * the admin's message to localhost/announce/online reaches alice from
#     `localhost`, with its subject and body, as type normal;
#   * the admin's localhost/announce/motd reaches alice at once, and bob,
#     who logs in afterwards, after his initial presence, with a XEP-0203
#     delay stamp;
#   * alice's message to `localhost` itself reaches the admin, from
#     `localhost`, naming alice.
#
# Usage: net_jabber_announce.pl PATH/TO/switchboard
# Set NET_JABBER_ANNOUNCE_TRACE=1 to run the server with -D, keep the
# temporary home and print its path.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Temp qw(tempdir);
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use Net::Jabber qw(Client);

my $T = 15;    # seconds any single wait may take

# See net_jabber_im.pl: XML::Stream's harmless warnings after STARTTLS.
$SIG{__WARN__} = sub {
    return if $_[0] =~ m{^Use of uninitialized value.* at \S*/XML/Stream\.pm line \d+};
    warn $_[0];
};

my $CONFIG = <<'XML';
<switchboard>
  <host name="localhost"><admin>admin@localhost</admin><registration>off</registration></host>
  <listen><c2s addr="127.0.0.1:0"/></listen>
  <spool dir="spool"/>
  <log file="logs/switchboard.log" level="info"/>
  <pidfile>run/switchboard.pid</pidfile>
</switchboard>
XML

my $server_pid;
my $server_out;

sub stop_server {
    return unless $server_pid;
    my $pid = $server_pid;
    undef $server_pid;
    kill 'TERM', $pid;
    my $deadline = time + 10;
    while (time < $deadline) {
        return 1 if waitpid($pid, WNOHANG) == $pid;
        sleep 0.1;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
    return 0;
}

sub fail {
    my ($msg) = @_;
    alarm 0;
    $msg =~ s/\s+\z//;
    print "Net::Jabber announcements: FAILED: $msg\n";
    stop_server();
    exit 1;
}

# Run $code with a hard deadline (the library's own waits are long).
sub bounded {
    my ($what, $secs, $code) = @_;
    my @r;
    my $ok = eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm $secs;
        @r = $code->();
        alarm 0;
        1;
    };
    alarm 0;
    fail($@ eq "timeout\n" ? "$what: no answer within $secs s" : "$what: $@") unless $ok;
    return wantarray ? @r : $r[0];
}

# One logged-in, available account with the queue of messages it received.
sub login {
    my ($user, $resource, $port, $cafile) = @_;
    my $c = { name => "$user/$resource", messages => [] };
    my $client = Net::Jabber::Client->new();
    $c->{client} = $client;
    $client->SetCallBacks(message => sub { push @{ $c->{messages} }, $_[1] });
    bounded("$c->{name} login", 2 * $T, sub {
        $client->Connect(
            hostname    => 'localhost',
            port        => $port,
            timeout     => $T,
            tls         => 1,
            ssl_verify  => 0x01,
            ssl_ca_path => $cafile,
        ) or die "connect/STARTTLS: " . ($client->GetErrorCode() // 'unknown error') . "\n";
        my @auth = $client->AuthSend(
            username => $user,
            password => "$user-pw",
            resource => $resource,
            timeout  => $T,
        );
        die "authentication: @{[ map { $_ // '' } @auth ]}\n" unless @auth && defined $auth[0] && $auth[0] eq 'ok';
        my %roster = $client->RosterGet();
        $client->PresenceSend();
    });
    return $c;
}

sub pump {
    my ($slice, @clients) = @_;
    for my $c (@clients) {
        my $st = bounded("$c->{name} read", $T, sub { $c->{client}->Process($slice) });
        fail("$c->{name}: the connection failed while reading") unless defined $st;
    }
}

# Wait until $pred accepts a message $c received; it is removed and
# returned. @others keep being pumped meanwhile.
sub expect {
    my ($what, $c, $pred, @others) = @_;
    my $deadline = time + $T;
    while (1) {
        my $q = $c->{messages};
        for my $i (0 .. $#$q) {
            return splice(@$q, $i, 1) if $pred->($q->[$i]);
        }
        fail("$c->{name} did not get $what within $T s; got: "
            . join(' ', map { $_->GetXML() } @$q)) if time > $deadline;
        pump(0.2, $c, @others);
    }
}

sub with_body {
    my ($body) = @_;
    return sub { ($_[0]->GetBody() // '') eq $body };
}

sub has_delay {
    my ($msg) = @_;
    for my $child ($msg->GetTree()->children()) {
        next unless ref $child && $child->get_tag() eq 'delay';
        return 1 if ($child->get_attrib('xmlns') // '') eq 'urn:xmpp:delay';
    }
    return 0;
}

sub scenario {
    my ($port, $cafile) = @_;
    my $alice = login('alice', 'desk',    $port, $cafile);
    my $admin = login('admin', 'console', $port, $cafile);

    # Not an admin: refused.
    $alice->{client}->MessageSend(to => 'localhost/announce/online', body => 'I am not the admin');
    my $err = expect('a forbidden error', $alice, sub { ($_[0]->GetType() // '') eq 'error' }, $admin);
    fail('the refusal is not forbidden: ' . $err->GetXML()) unless $err->GetXML() =~ /<forbidden\b/;

    # The admin announces to everyone online.
    $admin->{client}->MessageSend(
        to      => 'localhost/announce/online',
        subject => 'Maintenance',
        body    => 'Back in ten minutes.',
    );
    my $m = expect('the announcement', $alice, with_body('Back in ten minutes.'), $admin);
    fail('announcement from ' . ($m->GetFrom() // '') . ', not localhost: ' . $m->GetXML())
        unless lc($m->GetFrom() // '') eq 'localhost';
    fail('announcement without its subject: ' . $m->GetXML()) unless ($m->GetSubject() // '') eq 'Maintenance';
    fail('announcement type ' . ($m->GetType() // '') . ': ' . $m->GetXML()) unless ($m->GetType() // '') eq 'normal';

    # The message of the day: alice now, bob at his next login.
    $admin->{client}->MessageSend(to => 'localhost/announce/motd', body => 'Lunch is at noon.');
    expect('the MOTD (live)', $alice, with_body('Lunch is at noon.'), $admin);
    my $bob = login('bob', 'phone', $port, $cafile);
    $m = expect('the MOTD at login', $bob, with_body('Lunch is at noon.'), $alice, $admin);
    fail('MOTD at login without a urn:xmpp:delay stamp: ' . $m->GetXML()) unless has_delay($m);

    # A message to the server itself goes to the admins.
    $alice->{client}->MessageSend(to => 'localhost', body => 'My quota is full.');
    $m = expect('the forwarded message', $admin,
        sub { ($_[0]->GetBody() // '') =~ /My quota is full\./ }, $alice, $bob);
    fail('forwarded message does not name alice: ' . $m->GetXML())
        unless ($m->GetBody() // '') =~ m{^alice\@localhost/desk wrote:};

    print "Net::Jabber $Net::Jabber::VERSION announcements: non-admin forbidden, announce/online, "
        . "MOTD live and at login with delay stamp, message to the server forwarded to the admin: OK\n";

    for my $c ($alice, $admin, $bob) {
        bounded("$c->{name} disconnect", $T, sub { $c->{client}->Disconnect() });
    }
}

sub main {
    my $binary = abs_path($ARGV[0] // '') or fail('usage: net_jabber_announce.pl PATH/TO/switchboard');
    fail("$binary is not executable") unless -x $binary;
    my $trace = $ENV{NET_JABBER_ANNOUNCE_TRACE};
    my $home = tempdir('net-jabber-announce-XXXXXX', TMPDIR => 1, CLEANUP => !$trace);
    print "home: $home\n" if $trace;
    my $cfg = "$home/switchboard.xml";
    open(my $fh, '>', $cfg) or fail("$cfg: $!");
    print $fh $CONFIG;
    close $fh;
    my @base = ($binary, '-H', $home, '-c', $cfg);

    for my $user (qw(admin alice bob)) {
        bounded("user add $user", $T, sub {
            open(my $in, '|-', @base, 'user', 'add', "$user\@localhost") or die "cannot run $binary: $!\n";
            print $in "$user-pw\n";
            close $in or die "exit status " . ($? >> 8) . "\n";
        });
    }

    my @run = (@base, $trace ? ('-D') : (), 'run');
    $server_pid = open($server_out, '-|') // fail("fork: $!");
    if (!$server_pid) {
        open(STDERR, '>', '/dev/null');
        exec(@run) or do { print "exec failed: $!\n"; POSIX::_exit(127) };
    }
    my $port = bounded('server start', $T, sub {
        my $p;
        while (my $line = <$server_out>) {
            $p = $1 if $line =~ /^listening c2s .*:(\d+)\s*$/;
            last if $line =~ /^ready\s*$/;
        }
        $p;
    });
    fail('the server did not report a listening port') unless $port;

    scenario($port, "$home/etc/localhost.crt");
    fail('the server did not stop within 10 s of SIGTERM') unless stop_server();
    exit 0;
}

main();
