using System.Text.Json;
using WinTok.TestSupport;
using WinTok.Text;

namespace WinTok.Tests.Text;

/// <summary>
/// <see cref="ClipTokenizer"/> against the ids open_clip's tokenizer (as vendored by UniTok) gives: tests/fixtures/clip-bpe
/// (generate.py and README there).
/// </summary>
public sealed class ClipTokenizerTests
{
    private static readonly Lazy<JsonElement> Expected = new(() =>
        JsonDocument.Parse(File.ReadAllText(TestFixtures.File("clip-bpe", "clip-bpe.expected.json"))).RootElement);

    [Theory]
    [InlineData("cases", 77)]
    [InlineData("context_32", 32)]
    public void Tokenize_EveryFixtureText_GivesTheReferenceIds(string section, int contextLength)
    {
        var cases = Expected.Value.GetProperty(section).EnumerateArray()
            .Select(c => (Text: c.GetProperty("text").GetString()!, Ids: c.GetProperty("ids").EnumerateArray().Select(i => i.GetInt64()).ToArray()))
            .ToList();

        var rows = ClipTokenizer.Shared.Tokenize(cases.Select(c => c.Text).ToList(), contextLength);

        var failures = new List<string>();
        for (var i = 0; i < cases.Count; i++)
        {
            var expected = cases[i].Ids.Concat(Enumerable.Repeat(0L, contextLength - cases[i].Ids.Length)).ToArray();
            var actual = rows.AsSpan(i * contextLength, contextLength).ToArray();
            if (!expected.SequenceEqual(actual))
                failures.Add($"{JsonSerializer.Serialize(cases[i].Text)}: [{string.Join(", ", actual.TakeWhile((_, j) => j < 20))}] vs reference [{string.Join(", ", expected.Take(20))}]");
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {cases.Count} texts differ:\n" + string.Join("\n", failures.Take(20)));
    }

    [Fact]
    public void Tokenize_APromptLongerThanTheContext_IsCutAndStillEndsWithEndOfText()
    {
        var row = ClipTokenizer.Shared.Tokenize([string.Join(' ', Enumerable.Repeat("a photo of a cat", 30))], contextLength: 16);

        Assert.Equal(ClipTokenizer.StartOfText, row[0]);
        Assert.Equal(ClipTokenizer.EndOfText, row[15]);
        Assert.DoesNotContain(0L, row);
    }

    [Theory]
    [InlineData("  Fish &amp;   Chips\t", "fish & chips")]
    [InlineData("\u201cQuoted\u201d \ufb01sh \uff21\uff22\uffe6", "\"quoted\" fish ab\u20a9")]
    [InlineData("a <b>&amp;amp;</b>", "a <b>&</b>")]
    [InlineData("bell\u0007 and \u001b[1mbold\u001b[0m", "bell and bold")]
    public void Clean_AppliesFtfysFixesHtmlUnescapingWhitespaceAndLowerCase(string text, string expected) =>
        Assert.Equal(expected, ClipTokenizer.Clean(text));

    [Fact]
    public void Vocabulary_HasTheReferencesSizeAndHash()
    {
        var tokenizer = ClipTokenizer.Shared;

        Assert.Equal(49408, tokenizer.VocabularySize);
        Assert.Equal("924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a", tokenizer.VocabularySha256);
    }

    [Fact]
    public void FromStream_WhenTheMergesFileIsTooShort_FailsSayingSo()
    {
        using var buffer = new MemoryStream();
        using (var gzip = new System.IO.Compression.GZipStream(buffer, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true))
            gzip.Write("#version: 0.2\ni n\n"u8);
        buffer.Position = 0;

        var error = Assert.Throws<InvalidDataException>(() => ClipTokenizer.FromStream(buffer));

        Assert.Contains("48894 merges", error.Message);
    }
}
