using System.Text.Json;
using WinTok.Data.Images;
using WinTok.Data.Training;
using WinTok.TestSupport;

namespace WinTok.Data.Tests.Images;

/// <summary>
/// Damaged JPEGs (tests/fixtures/corrupt-jpeg: real photos with bits flipped in their entropy-coded data, and cut
/// short) against the verdict Pillow recorded for each: a file Pillow decodes is decoded to the same pixels, a file it
/// refuses is rejected with its reason, and with <see cref="PreprocessOptions.KeepDamagedImages"/> the files that still
/// hold every row are decoded as Pillow does with <c>LOAD_TRUNCATED_IMAGES</c>. WINTOK_CORRUPT_JPEG_FIXTURES names
/// another folder of the same layout (e.g. the verdicts of another Pillow version).
/// </summary>
public sealed class CorruptJpegTests
{
    public const string EnvironmentVariable = "WINTOK_CORRUPT_JPEG_FIXTURES";

    private static readonly Lazy<IReadOnlyList<CorruptJpeg>> Fixtures = new(() =>
        [.. TestFixtures.WithExtra("corrupt-jpeg", EnvironmentVariable).SelectMany(CorruptJpeg.ReadFolder)]);

    public static TheoryData<string, string> AllFiles => Select(_ => true);

    public static TheoryData<string, string> RefusedFiles => Select(f => !f.PillowDecodes);

    [Fact]
    public void CorruptJpegFixture_HoldsEveryKindOfVerdict()
    {
        // The folder must hold each kind of case, or the theories below would pass on nothing.
        var repository = Fixtures.Value.Where(f => f.Folder == TestFixtures.Folder("corrupt-jpeg")).ToList();

        Assert.Contains(repository, f => f.PillowDecodes && f.SingleScan);
        Assert.Contains(repository, f => f.PillowDecodes && !f.SingleScan);
        Assert.Contains(repository, f => f.PillowMessage == CorruptJpeg.Broken && f.SingleScan);
        Assert.Contains(repository, f => f.PillowMessage == CorruptJpeg.Broken && !f.SingleScan);
        Assert.Contains(repository, f => f.PillowMessage == CorruptJpeg.Truncated && f.SingleScan);
        Assert.Contains(repository, f => f.PillowMessage == CorruptJpeg.Truncated && !f.SingleScan);
    }

    [Theory]
    [MemberData(nameof(AllFiles))]
    public void Preprocess_WhenJpegIsDamaged_DecodesOrRefusesItAsPillowDoes(string folder, string file)
    {
        var fixture = Find(folder, file);
        var preprocessor = new ImagePreprocessor(new PreprocessOptions { ImageSize = fixture.ExpectedSize });
        var levels = new byte[preprocessor.ValuesPerImage];

        var result = preprocessor.Preprocess(File.ReadAllBytes(fixture.Path), levels);

        if (fixture.PillowDecodes)
        {
            Assert.True(result.Succeeded, $"{fixture}: Pillow decodes it, we rejected it: {result.Rejection}");
            AssertMatchesPillow(fixture, levels);
        }
        else
        {
            Assert.False(result.Succeeded, $"{fixture}: Pillow refuses it ({fixture.PillowMessage}), we decoded it");
            Assert.Contains(fixture.PillowMessage, result.Rejection!.Message, StringComparison.Ordinal);
            Assert.Equal(fixture.PillowMessage == CorruptJpeg.Truncated ? ImageRejectionReason.Truncated : ImageRejectionReason.Corrupt,
                result.Rejection.Reason);
        }
    }

    [Theory]
    [MemberData(nameof(RefusedFiles))]
    public void TrainingPreprocess_WhenPillowRefusesTheJpeg_RefusesItWithPillowsReason(string folder, string file)
    {
        var fixture = Find(folder, file);
        var preprocessor = new TrainingPreprocessor(64, CropRanges.Reference);
        var levels = new byte[preprocessor.ValuesPerImage];

        var result = preprocessor.Preprocess(File.ReadAllBytes(fixture.Path), new SampleRandom(0), levels, out _);

        Assert.False(result.Succeeded, $"{fixture}: Pillow refuses it ({fixture.PillowMessage}), training would have used it");
        Assert.Contains(fixture.PillowMessage, result.Rejection!.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(RefusedFiles))]
    public void Preprocess_WhenKeepDamagedImagesIsOn_DecodesTheBrokenOneScanFilesAsLenientPillowDoes(string folder, string file)
    {
        // A one-scan JPEG refused as broken had every row decoded before libjpeg met the stray marker; Pillow keeps
        // those rows with LOAD_TRUNCATED_IMAGES, and the fixture holds them. Truncated files and multi-scan files
        // libjpeg gave up on stay rejected.
        var fixture = Find(folder, file);
        var keepDamaged = fixture.SingleScan && fixture.PillowMessage == CorruptJpeg.Broken;
        var preprocessor = new ImagePreprocessor(new PreprocessOptions { ImageSize = fixture.ExpectedSize, KeepDamagedImages = true });
        var levels = new byte[preprocessor.ValuesPerImage];

        var result = preprocessor.Preprocess(File.ReadAllBytes(fixture.Path), levels);

        Assert.True(keepDamaged == result.Succeeded,
            $"{fixture}: expected {(keepDamaged ? "decoded" : "rejected")}, got {(result.Succeeded ? "decoded" : result.Rejection!.ToString())}");
        if (result.Succeeded)
        {
            AssertMatchesPillow(fixture, levels);
        }
    }

    private static void AssertMatchesPillow(CorruptJpeg fixture, byte[] levels)
    {
        // The JPEG bound of the parity tests: libjpeg decodes the damaged data the same way in Skia as in Pillow with
        // libjpeg-turbo's SIMD off, as the expected levels were made (README.md says why).
        Assert.NotNull(fixture.ExpectedKey);
        var comparison = Comparison.Of(fixture.ToString(), levels, fixture.ExpectedLevels());
        TestContext.Current.TestOutputHelper?.WriteLine(comparison.ToString());
        Assert.True(comparison.WithinOneLevel >= 0.999, $"{comparison}: fewer than 99.9% of values within one level");
        Assert.True(comparison.MeanAbsoluteError <= 0.5, $"{comparison}: mean absolute error above half a level");
    }

    private static CorruptJpeg Find(string folder, string file) => Fixtures.Value.Single(f => f.Folder == folder && f.File == file);

    private static TheoryData<string, string> Select(Func<CorruptJpeg, bool> predicate)
    {
        var data = new TheoryData<string, string>();
        foreach (var fixture in Fixtures.Value.Where(predicate))
        {
            data.Add(fixture.Folder, fixture.File);
        }
        return data;
    }
}

/// <summary>One damaged JPEG of a corrupt-jpeg folder and Pillow's verdict on it (index.json, expected.safetensors).</summary>
internal sealed record CorruptJpeg(string Folder, string File, bool SingleScan, string Verdict, string? ExpectedKey, int ExpectedSize, string PillowVersion)
{
    public const string Broken = "broken data stream when reading image file";
    public const string Truncated = "image file is truncated";

    private static readonly Dictionary<string, SafetensorsFile> Expected = [];

    public string Path => System.IO.Path.Combine(Folder, File);

    public bool PillowDecodes => Verdict == "decodes";

    /// <summary>Pillow's OSError message without its byte count ("image file is truncated (12 bytes not processed)").</summary>
    public string PillowMessage => Verdict.Split(" (")[0];

    public ReadOnlySpan<byte> ExpectedLevels()
    {
        SafetensorsFile file;
        lock (Expected)
        {
            if (!Expected.TryGetValue(Folder, out file!))
            {
                Expected[Folder] = file = SafetensorsFile.Read(System.IO.Path.Combine(Folder, "expected.safetensors"));
            }
        }
        return file.GetUInt8(ExpectedKey!, 3, ExpectedSize, ExpectedSize);
    }

    public override string ToString() => $"{System.IO.Path.GetFileName(Folder)}/{File} (Pillow {PillowVersion}: {Verdict})";

    public static IEnumerable<CorruptJpeg> ReadFolder(string folder)
    {
        using var index = JsonDocument.Parse(System.IO.File.ReadAllBytes(System.IO.Path.Combine(folder, "index.json")));
        var root = index.RootElement;
        var size = root.GetProperty("expected_size").GetInt32();
        var pillow = root.GetProperty("pillow").GetString()!;
        return [.. root.GetProperty("files").EnumerateObject()
            .Select(f => new CorruptJpeg(folder, f.Name,
                f.Value.GetProperty("single_scan").GetBoolean(),
                f.Value.GetProperty("verdict").GetString()!,
                f.Value.TryGetProperty("expected", out var key) ? key.GetString() : null,
                size, pillow))
            .OrderBy(f => f.File, StringComparer.Ordinal)];
    }
}
