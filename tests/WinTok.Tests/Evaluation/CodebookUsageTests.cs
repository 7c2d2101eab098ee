using WinTok.Evaluation;
using static TorchSharp.torch;

namespace WinTok.Tests.Evaluation;

/// <summary>Codebook usage against the reference's --vocab_stats numbers (metrics fixture), merging and serialisation.</summary>
public sealed class CodebookUsageTests
{
    private const double Tolerance = 1e-5;

    public static TheoryData<string> Sets() => MetricsFixtureSet.Sets("codebook_indices", MetricsFixtureSet.MetricsFolders());

    [Theory]
    [MemberData(nameof(Sets))]
    public void MetricParity_CodebookUsage_CountsAndSummaryMatchTheReference(string ioPath)
    {
        var set = MetricsFixtureSet.Get(ioPath);
        var expected = set.Expected.GetProperty("codebook");
        var shape = Shape(set);
        using var scope = NewDisposeScope();
        using var counter = new CodebookCounter(shape, CPU);

        counter.Add(set.Io["codebook_indices"]);
        var usage = counter.ToUsage();
        var summary = usage.Summarize(topK: 50);

        Assert.Equal(set.Io["codebook_counts"].data<long>().ToArray(), usage.Counts);
        Assert.Equal(expected.GetProperty("vocab_size").GetInt32(), summary.VocabularySize);
        Assert.Equal(expected.GetProperty("used_percent").GetDouble(), summary.UsedPercent);
        AssertRelative(expected.GetProperty("entropy_nats").GetDouble(), summary.EntropyNats, "entropy");
        AssertRelative(expected.GetProperty("perplexity").GetDouble(), summary.Perplexity, "perplexity");
        Assert.Equal(set.Io["codebook_indices"].numel(), summary.Total);
    }

    [Theory]
    [MemberData(nameof(Sets))]
    public void Summarize_TopTokens_AreTheLargestCountsWithTiesByIdAndPerCodebookSummariesAddUp(string ioPath)
    {
        var set = MetricsFixtureSet.Get(ioPath);
        var shape = Shape(set);
        using var scope = NewDisposeScope();
        var counts = set.Io["codebook_counts"];
        var usage = new CodebookUsage(shape, counts.data<long>().ToArray());
        int k = Math.Min(50, shape.VocabularySize);

        var top = usage.Summarize(k).Top;
        var perCodebook = Enumerable.Range(0, shape.NumCodebooks).Select(i => usage.SummarizeCodebook(i, k)).ToList();

        // The counts are those of torch.topk; the order among equal counts is by id.
        Assert.Equal(counts.topk(k).values.data<long>().ToArray(), top.Select(t => t.Count));
        var values = counts.data<long>().ToArray();
        var expectedIds = Enumerable.Range(0, values.Length).Where(i => values[i] > 0).OrderBy(i => (-values[i], i)).Take(k);
        Assert.Equal(expectedIds, top.Select(t => t.Id));
        Assert.Equal(usage.Total, perCodebook.Sum(s => s.Total));
        Assert.Equal(values.Count(v => v > 0), perCodebook.Sum(s => s.Used));
        for (int i = 0; i < shape.NumCodebooks; i++)
        {
            Assert.All(perCodebook[i].Top, t => Assert.InRange(t.Id, i * shape.CodebookSize, (i + 1) * shape.CodebookSize - 1));
        }
    }

    [Theory]
    [MemberData(nameof(Sets))]
    public void Merge_OfPartitions_EqualsOnePassExactly(string ioPath)
    {
        var set = MetricsFixtureSet.Get(ioPath);
        var shape = Shape(set);
        using var scope = NewDisposeScope();
        var indices = set.Io["codebook_indices"];
        long n = indices.shape[0];
        var merged = new CodebookUsage(shape);
        foreach (var (start, count) in new[] { (0L, 1L), (1L, n / 3), (1 + n / 3, n - 1 - n / 3) })
        {
            using var counter = new CodebookCounter(shape, CPU);
            counter.Add(indices.narrow(0, start, count));
            merged.Merge(ReadBack(counter.ToUsage()));
        }

        Assert.Equal(set.Io["codebook_counts"].data<long>().ToArray(), merged.Counts);
    }

    [Fact]
    public void Add_WhenAnIdIsOutOfItsCodebookOrTheShapeIsWrong_FailsSayingSo()
    {
        using var scope = NewDisposeScope();
        using var counter = new CodebookCounter(new CodebookShape(4, 16), CPU);

        var range = Assert.Throws<ArgumentException>(() => counter.Add(full(2, 4, 8, 16L)));
        var shape = Assert.Throws<ArgumentException>(() => counter.Add(zeros(2, 8, 8, int64)));

        Assert.Contains("[0, 16)", range.Message);
        Assert.Contains("(B, 4, L)", shape.Message);
        Assert.Equal(0, counter.ToUsage().Total);
    }

    [Fact]
    public void ReadFrom_WhenTheDataIsTruncated_FailsSayingSo()
    {
        var stream = new MemoryStream();
        new CodebookUsage(new CodebookShape(2, 8)).WriteTo(stream);
        var bytes = stream.ToArray();

        var error = Assert.Throws<InvalidDataException>(() => CodebookUsage.ReadFrom(new MemoryStream(bytes[..^1])));

        Assert.Contains("truncated", error.Message);
    }

    [Fact]
    public void Summarize_OfNoTokens_IsZeroEverywhere()
    {
        var summary = new CodebookUsage(new CodebookShape(2, 8)).Summarize();

        Assert.Equal((0L, 0, 0.0, 0.0, 1.0), (summary.Total, summary.Used, summary.UsedPercent, summary.EntropyNats, summary.Perplexity));
        Assert.Empty(summary.Top);
    }

    private static CodebookShape Shape(MetricsFixtureSet set)
    {
        var codebook = set.Expected.GetProperty("codebook");
        int codebooks = codebook.GetProperty("num_codebooks").GetInt32();
        return new CodebookShape(codebooks, codebook.GetProperty("vocab_size").GetInt32() / codebooks);
    }

    private static CodebookUsage ReadBack(CodebookUsage usage)
    {
        var stream = new MemoryStream();
        usage.WriteTo(stream);
        stream.Position = 0;
        return CodebookUsage.ReadFrom(stream);
    }

    private static void AssertRelative(double expected, double actual, string what)
    {
        double relative = Math.Abs(actual - expected) / Math.Abs(expected);
        Assert.True(relative <= Tolerance, $"{what}: {actual:R} vs {expected:R} (relative {relative:E2})");
    }
}
