#!/usr/bin/perl
# RFC 6121 instant messaging end to end with a second real client library:
# the Net::Jabber Perl library (Debian libnet-jabber-perl, built on Net::XMPP
# and XML::Stream).
#
# Starts the real `switchboard` binary on a temporary home (port 0), creates
# alice and bob, logs both in with Net::Jabber::Client (STARTTLS, then SASL
# PLAIN inside TLS: Authen::SASL's pure-Perl backend has no SCRAM, and picks
# PLAIN from the offered list), and checks: alice's subscription request
# reaches bob, bob approves it and alice sees `subscribed` and bob online;
# a chat message each way arrives with the right body and sender; a message
# alice sends while bob is offline is delivered when he logs in again, with
# a XEP-0203 (urn:xmpp:delay) stamp.
#
# TLS: the certificate is verified, not merely accepted: ssl_verify => 0x01
# with ssl_ca_path pointing at the server's self-signed HOME/etc/localhost.crt
# (XML::Stream hands both to IO::Socket::SSL->start_SSL on <proceed/>).
#
# Usage: net_jabber_im.pl PATH/TO/switchboard
# Set NET_JABBER_IM_TRACE=1 to run the server with -D, keep the temporary
# home and print its path (the stanza trace is in HOME/logs/switchboard.log).

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Temp qw(tempdir);
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use Net::Jabber qw(Client);

my $T = 15;    # seconds any single wait may take

# XML::Stream 1.24 (use warnings) looks sockets up by their stringified
# reference, which IO::Socket::SSL->start_SSL changes by reblessing, so each
# STARTTLS logs a burst of harmless "uninitialized value" warnings until the
# stream restart re-registers the socket. Drop exactly those; keep the rest.
$SIG{__WARN__} = sub {
    return if $_[0] =~ m{^Use of uninitialized value.* at \S*/XML/Stream\.pm line \d+};
    warn $_[0];
};

my $CONFIG = <<'XML';
<switchboard>
  <host name="localhost"><registration>off</registration></host>
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
    print "Net::Jabber IM: FAILED: $msg\n";
    stop_server();
    exit 1;
}

# Run $code with a hard deadline: the library's own waits (bind, session,
# roster) default to 300 s, so every step is also bounded by alarm.
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

# One logged-in account with queues of what it received.
sub login {
    my ($user, $password, $resource, $port, $cafile) = @_;
    my $c = { name => "$user/$resource", messages => [], presences => [] };
    my $client = Net::Jabber::Client->new();
    $c->{client} = $client;
    $client->SetCallBacks(
        message  => sub { push @{ $c->{messages} },  $_[1] },
        presence => sub { push @{ $c->{presences} }, $_[1] },
    );
    bounded("$c->{name} login", 2 * $T, sub {
        # hostname "localhost" is both the address (IPv4: XML::Stream uses
        # IO::Socket::INET) and the stream's `to`, and the name checked
        # against the certificate.
        $client->Connect(
            hostname    => 'localhost',
            port        => $port,
            timeout     => $T,
            tls         => 1,
            ssl_verify  => 0x01,
            ssl_ca_path => $cafile,
        ) or die "connect/STARTTLS: " . ($client->GetErrorCode() // 'unknown error') . "\n";
        my $sock = $client->{STREAM}->GetSock($client->GetStreamID());
        die "STARTTLS did not leave a TLS socket\n" unless ref($sock) && $sock->isa('IO::Socket::SSL');
        my @auth = $client->AuthSend(
            username => $user,
            password => $password,
            resource => $resource,
            timeout  => $T,
        );
        die "authentication: @{[ map { $_ // '' } @auth ]}\n" unless @auth && defined $auth[0] && $auth[0] eq 'ok';
        # A roster get only succeeds on a bound session.
        my %roster = $client->RosterGet();
        $client->PresenceSend();
    });
    return $c;
}

# Pump every connection for a short while, so nothing backs up while we wait
# on one of them.
sub pump {
    my ($slice, @clients) = @_;
    for my $c (@clients) {
        next if $c->{gone};
        my $st = bounded("$c->{name} read", $T, sub { $c->{client}->Process($slice) });
        fail("$c->{name}: the connection failed while reading") unless defined $st;
    }
}

# Wait until $pred accepts an item in $c's queue $kind; the item is removed
# and returned. All of @others keep being pumped meanwhile.
sub expect {
    my ($what, $c, $kind, $pred, @others) = @_;
    my $deadline = time + $T;
    while (1) {
        my $q = $c->{$kind};
        for my $i (0 .. $#$q) {
            if ($pred->($q->[$i])) {
                return splice(@$q, $i, 1);
            }
        }
        fail("$c->{name} did not get $what within $T s") if time > $deadline;
        pump(0.2, $c, @others);
    }
}

sub bare { my ($jid) = @_; $jid //= ''; $jid =~ s{/.*}{}; lc $jid }

# The XEP-0203 stamp of a message, or undef.
sub delay_stamp {
    my ($msg) = @_;
    for my $child ($msg->GetTree()->children()) {
        next unless ref $child;
        next unless $child->get_tag() eq 'delay';
        next unless ($child->get_attrib('xmlns') // '') eq 'urn:xmpp:delay';
        return $child->get_attrib('stamp');
    }
    return undef;
}

sub chat_from {
    my ($from, $body) = @_;
    return sub {
        my ($m) = @_;
        return bare($m->GetFrom()) eq $from && ($m->GetBody() // '') eq $body;
    };
}

sub describe { my ($m) = @_; return $m->GetXML() }

sub scenario {
    my ($port, $cafile) = @_;
    my $alice = login('alice', 'alice-pw', 'desk',  $port, $cafile);
    my $bob   = login('bob',   'bob-pw',   'phone', $port, $cafile);

    # alice asks, bob approves; alice learns it and sees bob online.
    $alice->{client}->Subscription(type => 'subscribe', to => 'bob@localhost');
    my $req = expect('a subscription request from alice', $bob, 'presences',
        sub { ($_[0]->GetType() // '') eq 'subscribe' }, $alice);
    fail('subscription request from ' . $req->GetFrom() . ', not alice@localhost')
        unless bare($req->GetFrom()) eq 'alice@localhost';
    $bob->{client}->Subscription(type => 'subscribed', to => 'alice@localhost');
    expect("bob's approval", $alice, 'presences',
        sub { ($_[0]->GetType() // '') eq 'subscribed' && bare($_[0]->GetFrom()) eq 'bob@localhost' }, $bob);
    expect("bob's presence (available)", $alice, 'presences',
        sub { ($_[0]->GetType() // '') eq '' && lc($_[0]->GetFrom()) eq 'bob@localhost/phone' }, $bob);

    # A chat message each way, body and full sender checked.
    $alice->{client}->MessageSend(to => 'bob@localhost', type => 'chat', body => 'hello bob');
    my $m = expect("alice's message", $bob, 'messages', chat_from('alice@localhost', 'hello bob'), $alice);
    fail('message from ' . $m->GetFrom() . ', not alice@localhost/desk: ' . describe($m))
        unless lc($m->GetFrom()) eq 'alice@localhost/desk';
    fail('message type ' . ($m->GetType() // '') . ': ' . describe($m)) unless ($m->GetType() // '') eq 'chat';
    $bob->{client}->MessageSend(to => $m->GetFrom(), type => 'chat', body => 'hi alice');
    $m = expect("bob's reply", $alice, 'messages', chat_from('bob@localhost', 'hi alice'), $bob);
    fail('reply from ' . $m->GetFrom() . ', not bob@localhost/phone: ' . describe($m))
        unless lc($m->GetFrom()) eq 'bob@localhost/phone';

    # bob leaves; alice sees it; a message waits for him offline.
    bounded('bob disconnect', $T, sub { $bob->{client}->Disconnect() });
    $bob->{gone} = 1;
    expect("bob's presence (unavailable)", $alice, 'presences',
        sub { ($_[0]->GetType() // '') eq 'unavailable' && lc($_[0]->GetFrom()) eq 'bob@localhost/phone' });
    $alice->{client}->MessageSend(to => 'bob@localhost', type => 'chat', body => 'while you were away');
    pump(0.5, $alice);
    my $bob2 = login('bob', 'bob-pw', 'laptop', $port, $cafile);
    $m = expect('the offline message', $bob2, 'messages', chat_from('alice@localhost', 'while you were away'), $alice);
    my $stamp = delay_stamp($m);
    fail('offline message without a urn:xmpp:delay stamp: ' . describe($m)) unless defined $stamp && $stamp ne '';
    fail("offline message delay stamp '$stamp' is not an XEP-0082 date-time")
        unless $stamp =~ /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

    print "Net::Jabber $Net::Jabber::VERSION (Net::XMPP $Net::XMPP::VERSION, XML::Stream $XML::Stream::VERSION) IM: "
        . "STARTTLS + SASL PLAIN, subscription approved, chat both ways, offline delivery with delay stamp: OK\n";

    for my $c ($alice, $bob2) {
        bounded("$c->{name} disconnect", $T, sub { $c->{client}->Disconnect() });
    }
}

sub main {
    my $binary = abs_path($ARGV[0] // '') or fail('usage: net_jabber_im.pl PATH/TO/switchboard');
    fail("$binary is not executable") unless -x $binary;
    my $trace = $ENV{NET_JABBER_IM_TRACE};
    my $home = tempdir('net-jabber-im-XXXXXX', TMPDIR => 1, CLEANUP => !$trace);
    print "home: $home\n" if $trace;
    my $cfg = "$home/switchboard.xml";
    open(my $fh, '>', $cfg) or fail("$cfg: $!");
    print $fh $CONFIG;
    close $fh;
    my @base = ($binary, '-H', $home, '-c', $cfg);

    for my $u (['alice', 'alice-pw'], ['bob', 'bob-pw']) {
        my ($user, $pw) = @$u;
        bounded("user add $user", $T, sub {
            open(my $in, '|-', @base, 'user', 'add', "$user\@localhost") or die "cannot run $binary: $!\n";
            print $in "$pw\n";
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
