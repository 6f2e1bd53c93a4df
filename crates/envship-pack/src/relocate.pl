# envship relocator (perl 5.8+, core only). Embedded in bin/conda-unpack; the same rules as
# envship's Rust relocator and relocate.py (see relocate.rs): keep in sync.
# Listed paths keep the archive path rule (archive_path.rs): relative, no `..`, no NUL; and no
# file is read or written through a symlink (checked for every path before anything is written).
use strict;
use warnings;
use Fcntl qw(O_WRONLY O_TRUNC O_CREAT O_EXCL O_NOFOLLOW);

my $LIST = "share/envship/relocate.txt";

sub fail { print STDERR "conda-unpack: $_[0]\n"; exit 1; }

sub unescape { my $s = shift; $s =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge; return $s; }

sub escape {
    my $s = shift;
    $s =~ s/([\x00-\x20\x7f-\xff%])/sprintf("%%%02X", ord($1))/ge;
    return $s;
}

sub slurp {
    my $p = shift;
    open(my $fh, '<', $p) or return undef;
    binmode($fh);
    local $/;
    my $d = <$fh>;
    close($fh);
    $d = '' unless defined $d;
    return $d;
}

sub check_rule {
    my ($rel, $where) = @_;
    fail("$where: $rel: absolute path") if substr($rel, 0, 1) eq '/';
    fail("$where: $rel: path contains a NUL byte") if index($rel, "\0") >= 0;
    my @parts = grep { $_ ne '' && $_ ne '.' } split(/\//, $rel, -1);
    fail("$where: $rel: path contains `..`") if grep { $_ eq '..' } @parts;
    fail("$where: empty path") unless @parts;
    return join('/', @parts);
}

sub through_link {
    my ($root, $rel) = @_;
    my $p = $root;
    for my $part (split(/\//, $rel)) {
        $p = "$p/$part";
        return 1 if -l $p;
        return 0 unless -e $p;
    }
    return 0;
}

sub spew {
    my ($p, $d, $flags, $mode) = @_;
    sysopen(my $fh, $p, $flags | O_NOFOLLOW, defined $mode ? $mode : 0644)
        or fail("cannot write $p: $!");
    binmode($fh);
    print $fh $d or fail("cannot write $p: $!");
    close($fh) or fail("cannot write $p: $!");
}

sub count_of {
    my ($s, $needle) = @_;
    my ($c, $p) = (0, 0);
    while ((my $i = index($s, $needle, $p)) >= 0) { $c++; $p = $i + length($needle); }
    return $c;
}

sub replace_all {
    my ($s, $old, $new) = @_;
    $s =~ s/\Q$old\E/$new/g;
    return $s;
}

sub fix_shebang {
    my $d = shift;
    return $d unless substr($d, 0, 2) eq '#!';
    my $end = index($d, "\n");
    $end = length($d) if $end < 0;
    return $d if $end <= 127;
    my $body = substr($d, 2, $end - 2);
    my $exe_end = length($body);
    $exe_end = $-[0] if $body =~ /[ \t\r]/;
    my $exe = substr($body, 0, $exe_end);
    my $name = substr($exe, rindex($exe, '/') + 1);
    return '#!/usr/bin/env ' . $name . substr($body, $exe_end) . substr($d, $end);
}

sub reloc_binary {
    my ($d, $old, $new, $rel) = @_;
    my ($lo, $ln, $n) = (length($old), length($new), length($d));
    my $out = '';
    my $pos = 0;
    while ((my $i = index($d, $old, $pos)) >= 0) {
        my $j = index($d, "\0", $i + $lo);
        $j = $n if $j < 0;
        my $seg = substr($d, $i, $j - $i);
        my $count = count_of($seg, $old);
        $out .= substr($d, $pos, $i - $pos) . replace_all($seg, $old, $new);
        my $k = $j;
        if ($j < $n) { $out .= "\0"; $k = $j + 1; }
        if ($ln < $lo) {
            $out .= "\0" x ($count * ($lo - $ln));
        } elsif ($ln > $lo) {
            my $grow = $count * ($ln - $lo);
            if ($k + $grow > $n || substr($d, $k, $grow) =~ /[^\0]/) {
                fail("cannot relocate $rel: the C string at offset $i has no room for $new");
            }
            $k += $grow;
        }
        $pos = $k;
    }
    $out .= substr($d, $pos);
    return $out;
}

my $new = $ARGV[0];
defined $new or fail("usage: conda-unpack PREFIX");
my $listpath = "$new/$LIST";
through_link($new, $LIST) and fail("refusing to relocate $LIST: a symlink is on its way");
my $text = slurp($listpath);
defined $text or fail("cannot read $listpath: $!");
my @lines = split(/\n/, $text, -1);
($lines[0] eq 'envship-relocate 1' && $lines[1] =~ /^prefix /)
    or fail("$listpath: not an envship relocation list");
my $old = unescape(substr($lines[1], 7));
my @entries;
for my $n (2 .. $#lines) {
    my $line = $lines[$n];
    next if $line eq '';
    my ($mode, $room, $path) = split(/ /, $line, 3);
    (defined $path && ($mode eq 't' || $mode eq 'b') && $room =~ /^\d+$/)
        or fail("$listpath, line " . ($n + 1) . ": expected MODE ROOM PATH");
    push @entries, [$mode, $room, check_rule(unescape($path), "$listpath, line " . ($n + 1))];
}
for my $e (@entries) {
    through_link($new, $e->[2]) and fail("refusing to relocate $e->[2]: a symlink is on its way");
}
if ($old eq $new) { print "conda-unpack: already relocated to $new\n"; exit 0; }
my ($lo, $ln) = (length($old), length($new));
for my $e (@entries) {
    my ($mode, $room, $rel) = @$e;
    if ($mode eq 'b' && $ln > $room && $ln > $lo) {
        my $r = $room > $lo ? $room : $lo;
        fail("the destination prefix $new ($ln bytes) is longer than the $r bytes available in binary file $rel");
    }
}
if ($ln > $lo) {
    for my $e (@entries) {
        my ($mode, $room, $rel) = @$e;
        next unless $mode eq 'b';
        my $d = slurp("$new/$rel");
        reloc_binary($d, $old, $new, $rel) if defined $d;
    }
}
my $changed = 0;
for my $e (@entries) {
    my ($mode, $room, $rel) = @$e;
    my $p = "$new/$rel";
    if (!-e $p) { print STDERR "conda-unpack: warning: $rel is missing\n"; next; }
    my $d = slurp($p);
    defined $d or fail("cannot read $p: $!");
    my $out;
    if ($mode eq 't') {
        $out = $old eq $new ? $d : replace_all($d, $old, $new);
        $out = fix_shebang($out) if substr($rel, 0, 4) eq 'bin/';
    } else {
        $out = reloc_binary($d, $old, $new, $rel);
    }
    if ($out ne $d) { spew($p, $out, O_WRONLY | O_TRUNC); $changed++; }
}
$lines[1] = 'prefix ' . escape($new);
unlink("$listpath.tmp") if -l "$listpath.tmp" || -e "$listpath.tmp";
spew("$listpath.tmp", join("\n", @lines), O_WRONLY | O_CREAT | O_EXCL, (lstat($listpath))[2] & 07777);
rename("$listpath.tmp", $listpath) or fail("cannot rename $listpath.tmp: $!");
print "conda-unpack: relocated $changed files from $old to $new\n";
