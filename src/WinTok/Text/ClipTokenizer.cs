using System.Globalization;
using System.IO.Compression;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace WinTok.Text;

/// <summary>
/// The CLIP byte-level BPE tokenizer as open_clip's <c>tokenizer.py</c> (<c>SimpleTokenizer</c>, <c>tokenize</c>) applies
/// it, which UniTok's text tower was trained with: clean the text, lower-case it, split it with CLIP's pattern, map each
/// piece's UTF-8 bytes to printable characters, merge by rank with <c>&lt;/w&gt;</c> marking the end of a word, then wrap
/// in <c>&lt;start_of_text&gt;</c> (49406) ... <c>&lt;end_of_text&gt;</c> (49407) and zero-pad to the context length.
/// The vocabulary is open_clip's <c>bpe_simple_vocab_16e6.txt.gz</c> (from OpenAI's CLIP, MIT), shipped in this
/// assembly. Thread-safe.
/// </summary>
/// <remarks>
/// The BPE merging is Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/> (byte level, end-of-word suffix
/// <c>&lt;/w&gt;</c>, CLIP's regex as pre-tokenizer), checked id for id against the reference on the test prompts.
/// The cleaning is ours (<see cref="Clean"/>); open_clip calls ftfy, of which we apply the parts that act on text that
/// is not mojibake. Known differences from the reference, none of which a class name or prompt template triggers:
/// Unicode NFC composition is not done (the build runs without ICU), so decomposed accents and halfwidth katakana with
/// voiced marks stay decomposed; ftfy's mojibake repair (fix_encoding, restore_byte_a0, replace_lossy_sequences, decode_inconsistent_utf8,
/// fix_c1_controls) is not done; HTML entities are decoded by .NET's <see cref="WebUtility.HtmlDecode(string)"/>, which
/// unlike Python's <c>html.unescape</c> needs the closing semicolon, and ftfy's upper-case entity forms are not known;
/// .NET lower-cases one character at a time (Python maps 'İ' to two characters); and letters or digits outside the
/// Basic Multilingual Plane are split as symbols (.NET's regex classes see UTF-16 code units).
/// </remarks>
public sealed class ClipTokenizer
{
    /// <summary>Id of <c>&lt;start_of_text&gt;</c>.</summary>
    public const int StartOfText = 49406;

    /// <summary>Id of <c>&lt;end_of_text&gt;</c>; also the largest id, which the text tower pools at.</summary>
    public const int EndOfText = 49407;

    /// <summary>CLIP's context length.</summary>
    public const int DefaultContextLength = 77;

    private const string VocabularyResource = "WinTok.Text.Data.bpe_simple_vocab_16e6.txt.gz";

    // open_clip keeps merges[1 : 49152 - 256 - 2 + 1] of the file: skip the version line, then 48,894 merges, so that
    // 256 bytes + 256 end-of-word bytes + the merges + 2 special tokens make 49,408 ids.
    private const int MergeCount = 49152 - 256 - 2;

    // open_clip's pattern, special tokens first; the text is lower-cased before, so IgnoreCase only mirrors re.IGNORECASE.
    private static readonly Regex Pattern = new(
        @"<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant | RegexOptions.Compiled);

    private static readonly Regex Whitespace = new(@"\s+", RegexOptions.CultureInvariant | RegexOptions.Compiled);
    private static readonly Regex TerminalEscape = new("\u001b\\[((?:\\d|;)*)([a-zA-Z])", RegexOptions.CultureInvariant | RegexOptions.Compiled);
    private static readonly Lazy<ClipTokenizer> SharedInstance = new(() => FromStream(OpenVocabulary()));

    // NFKC of U+FF5F..U+FFEF (halfwidth CJK punctuation, katakana and Hangul, fullwidth symbols, halfwidth arrows and
    // shapes), '\0' where NFKC leaves the character alone: the table ftfy's fix_character_width builds, taken from Python
    // 3.11's unicodedata (Unicode 14) as data, because string.Normalize needs ICU, which this build runs without.
    // U+FFE3 maps to two characters and is handled on its own.
    private const string WidthForms =
        "\u2985\u2986\u3002\u300C\u300D\u3001\u30FB\u30F2\u30A1\u30A3\u30A5\u30A7\u30A9\u30E3\u30E5\u30E7\u30C3\u30FC\u30A2\u30A4\u30A6\u30A8\u30AA\u30AB\u30AD\u30AF\u30B1\u30B3\u30B5\u30B7\u30B9\u30BB\u30BD\u30BF\u30C1\u30C4\u30C6\u30C8\u30CA\u30CB\u30CC\u30CD\u30CE\u30CF\u30D2\u30D5\u30D8\u30DB\u30DE\u30DF\u30E0\u30E1\u30E2\u30E4\u30E6\u30E8\u30E9\u30EA\u30EB\u30EC\u30ED\u30EF\u30F3\u3099\u309A\u1160\u1100\u1101\u11AA\u1102\u11AC\u11AD\u1103\u1104\u1105\u11B0\u11B1\u11B2\u11B3\u11B4\u11B5\u111A\u1106\u1107\u1108\u1121\u1109\u110A\u110B\u110C\u110D\u110E\u110F\u1110\u1111\u1112\u0000\u0000\u0000\u1161\u1162\u1163\u1164\u1165\u1166\u0000\u0000\u1167\u1168\u1169\u116A\u116B\u116C\u0000\u0000\u116D\u116E\u116F\u1170\u1171\u1172\u0000\u0000\u1173\u1174\u1175\u0000\u0000\u0000\u00A2\u00A3\u00AC\u0000\u00A6\u00A5\u20A9\u0000\u2502\u2190\u2191\u2192\u2193\u25A0\u25CB\u0000";

    private readonly BpeTokenizer bpe;

    private ClipTokenizer(BpeTokenizer bpe, int vocabularySize, string vocabularySha256) =>
        (this.bpe, VocabularySize, VocabularySha256) = (bpe, vocabularySize, vocabularySha256);

    /// <summary>The tokenizer over the shipped open_clip vocabulary (built once, about a second).</summary>
    public static ClipTokenizer Shared => SharedInstance.Value;

    /// <summary>49,408.</summary>
    public int VocabularySize { get; }

    /// <summary>Hex sha256 of the vocabulary file as shipped (gzip bytes): part of a text tower's identity.</summary>
    public string VocabularySha256 { get; }

    /// <summary>Builds a tokenizer from a gzip-compressed <c>bpe_simple_vocab_16e6.txt.gz</c>-style merges file.</summary>
    public static ClipTokenizer FromStream(Stream gzipMerges)
    {
        using var copy = new MemoryStream();
        gzipMerges.CopyTo(copy);
        var sha = Convert.ToHexStringLower(SHA256.HashData(copy.ToArray()));
        copy.Position = 0;
        using var reader = new StreamReader(new GZipStream(copy, CompressionMode.Decompress), Encoding.UTF8);
        var lines = reader.ReadToEnd().Split('\n');
        if (lines.Length < MergeCount + 1)
            throw new InvalidDataException($"The CLIP merges file has {lines.Length} lines; it needs a version line and {MergeCount} merges");
        var merges = lines.Skip(1).Take(MergeCount).ToArray();

        var byteChars = ByteLevelAlphabet();
        var vocabulary = new List<KeyValuePair<string, int>>(MergeCount + 514);
        foreach (var c in byteChars) vocabulary.Add(new(c, vocabulary.Count));
        foreach (var c in byteChars) vocabulary.Add(new(c + "</w>", vocabulary.Count));
        foreach (var merge in merges) vocabulary.Add(new(merge.Replace(" ", "", StringComparison.Ordinal), vocabulary.Count));
        var special = new Dictionary<string, int> { ["<start_of_text>"] = StartOfText, ["<end_of_text>"] = EndOfText };
        if (vocabulary.Count != StartOfText)
            throw new InvalidDataException($"The CLIP vocabulary has {vocabulary.Count} entries before the special tokens, expected {StartOfText}");

        var bpe = BpeTokenizer.Create(new BpeOptions(vocabulary)
        {
            Merges = merges,
            SpecialTokens = special,
            PreTokenizer = new RegexPreTokenizer(Pattern, special),
            EndOfWordSuffix = "</w>",
            ByteLevel = true,
        });
        return new ClipTokenizer(bpe, EndOfText + 1, sha);
    }

    /// <summary>
    /// open_clip's <c>whitespace_clean(basic_clean(text)).lower()</c>: the ftfy fixes that apply to text that is not
    /// mojibake (to a fixed point, as ftfy loops), HTML entities decoded twice, runs of whitespace to one space, trimmed,
    /// lower-cased. See the class remarks for what differs from ftfy.
    /// </summary>
    public static string Clean(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var fixedText = FixText(text);
        var unescaped = WebUtility.HtmlDecode(WebUtility.HtmlDecode(fixedText)).Trim();
        return Whitespace.Replace(unescaped, " ").Trim().ToLowerInvariant();
    }

    /// <summary>BPE ids of <paramref name="text"/> after <see cref="Clean"/>, without start or end tokens (open_clip <c>encode</c>).</summary>
    public IReadOnlyList<int> Encode(string text) =>
        bpe.EncodeToIds(Clean(text), considerPreTokenization: true, considerNormalization: false);

    /// <summary>
    /// open_clip's <c>tokenize(texts, context_length)</c>: per text, start + ids + end, truncated to the context with the
    /// last id forced to end-of-text, zero-padded. Returns (texts, context) ids row-major.
    /// </summary>
    public long[] Tokenize(IReadOnlyList<string> texts, int contextLength = DefaultContextLength)
    {
        ArgumentNullException.ThrowIfNull(texts);
        ArgumentOutOfRangeException.ThrowIfLessThan(contextLength, 2);
        var result = new long[texts.Count * contextLength];
        for (var i = 0; i < texts.Count; i++)
        {
            var tokens = new List<long>(contextLength + 2) { StartOfText };
            tokens.AddRange(Encode(texts[i]).Select(id => (long)id));
            tokens.Add(EndOfText);
            if (tokens.Count > contextLength)
            {
                tokens.RemoveRange(contextLength, tokens.Count - contextLength);
                tokens[^1] = EndOfText; // a truncated prompt still ends where the tower pools
            }
            tokens.CopyTo(result.AsSpan(i * contextLength, contextLength));
        }
        return result;
    }

    /// <summary>
    /// The ftfy 6.3 fixes for text that is not mojibake, in ftfy's order, repeated until nothing changes: HTML entities
    /// (only when the text has no '&lt;', as ftfy's "auto"), Latin ligatures, half- and full-width forms, curly quotes,
    /// line breaks, terminal escapes, control characters, then NFC.
    /// </summary>
    private static string FixText(string text)
    {
        var unescape = !text.Contains('<', StringComparison.Ordinal);
        while (true)
        {
            var before = text;
            if (unescape) text = WebUtility.HtmlDecode(text);
            text = MapCharacters(text);
            text = text.Replace("\r\n", "\n", StringComparison.Ordinal).Replace('\r', '\n')
                .Replace('\u2028', '\n').Replace('\u2029', '\n').Replace('\u0085', '\n');
            text = TerminalEscape.Replace(text, "");
            text = RemoveControlCharacters(text);
            // NFC needs ICU: under the repository's InvariantGlobalization this leaves the text as it is, so decomposed
            // accents stay decomposed (a documented gap; typed text and every prompt template are composed already).
            text = text.Normalize(NormalizationForm.FormC);
            if (text == before) return text;
        }
    }

    private static string MapCharacters(string text)
    {
        var builder = new StringBuilder(text.Length);
        foreach (var c in text)
        {
            switch (c)
            {
                case 'Ĳ': builder.Append("IJ"); break;
                case 'ĳ': builder.Append("ij"); break;
                case 'ŉ': builder.Append("ʼn"); break;
                case 'Ǳ': builder.Append("DZ"); break;
                case 'ǲ': builder.Append("Dz"); break;
                case 'ǳ': builder.Append("dz"); break;
                case 'Ǆ': builder.Append("DŽ"); break;
                case 'ǅ': builder.Append("Dž"); break;
                case 'ǆ': builder.Append("dž"); break;
                case 'Ǉ': builder.Append("LJ"); break;
                case 'ǈ': builder.Append("Lj"); break;
                case 'ǉ': builder.Append("lj"); break;
                case 'Ǌ': builder.Append("NJ"); break;
                case 'ǋ': builder.Append("Nj"); break;
                case 'ǌ': builder.Append("nj"); break;
                case 'ﬀ': builder.Append("ff"); break;
                case 'ﬁ': builder.Append("fi"); break;
                case 'ﬂ': builder.Append("fl"); break;
                case 'ﬃ': builder.Append("ffi"); break;
                case 'ﬄ': builder.Append("ffl"); break;
                case 'ﬅ': builder.Append("ſt"); break;
                case 'ﬆ': builder.Append("st"); break;
                case '\u3000': builder.Append(' '); break;
                // ftfy maps U+FF01..U+FFEF to their NFKC forms where those differ (tables below).
                case >= '\uFF01' and <= '\uFF5E': builder.Append((char)(c - 0xFEE0)); break;
                case '\uFFE3': builder.Append(" \u0304"); break;
                case >= '\uFF5F' and <= '\uFFEF' when WidthForms[c - 0xFF5F] != '\0': builder.Append(WidthForms[c - 0xFF5F]); break;
                // ftfy's uncurl_quotes: U+02BC and U+2018..U+201B to ', U+201C..U+201F to ".
                case '\u02BC' or (>= '\u2018' and <= '\u201B'): builder.Append('\''); break;
                case >= '\u201C' and <= '\u201F': builder.Append('"'); break;
                default: builder.Append(c); break;
            }
        }
        return builder.ToString();
    }

    /// <summary>ftfy's remove_control_chars: C0 controls other than tab, LF, FF, CR; DEL; U+206A..206F; BOM; U+FFF9..FFFC.</summary>
    private static string RemoveControlCharacters(string text)
    {
        static bool Removed(char c) => c is (< '\u0009') or '\u000B' or (>= '\u000E' and < '\u0020') or '\u007F'
            or (>= '\u206A' and <= '\u206F') or '\uFEFF' or (>= '\uFFF9' and <= '\uFFFC');
        return text.Any(Removed) ? string.Concat(text.Where(c => !Removed(c))) : text;
    }

    /// <summary>
    /// CLIP's <c>bytes_to_unicode</c>: printable Latin-1 bytes stand for themselves, the other 68 bytes for
    /// U+0100 onwards, in byte order. Index = byte, value = its character; this is also the first 256 ids' order, which
    /// lists the printable bytes first.
    /// </summary>
    private static List<string> ByteLevelAlphabet()
    {
        var printable = Enumerable.Range('!', '~' - '!' + 1)
            .Concat(Enumerable.Range('¡', '¬' - '¡' + 1))
            .Concat(Enumerable.Range('®', 'ÿ' - '®' + 1)).ToList();
        var bytes = new List<int>(printable);
        var chars = new List<int>(printable);
        var next = 0;
        for (var b = 0; b < 256; b++)
        {
            if (printable.Contains(b)) continue;
            bytes.Add(b);
            chars.Add(256 + next++);
        }
        return chars.Select(c => ((char)c).ToString(CultureInfo.InvariantCulture)).ToList();
    }

    private static Stream OpenVocabulary() =>
        typeof(ClipTokenizer).Assembly.GetManifestResourceStream(VocabularyResource)
        ?? throw new InvalidOperationException($"The CLIP vocabulary resource '{VocabularyResource}' is missing from {typeof(ClipTokenizer).Assembly.GetName().Name}");
}
