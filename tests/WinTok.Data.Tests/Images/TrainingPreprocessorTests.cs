using System.Text.Json;
using WinTok.Data.Images;
using WinTok.TestSupport;

namespace WinTok.Data.Tests.Images;

/// <summary>
/// The training crop against torchvision and Pillow (tests/fixtures/train-crop: the reference pipeline's boxes, draws and
/// pixels), and the geometry's corner cases worked out by hand from torchvision's <c>RandomResizedCrop.get_params</c>.
/// </summary>
public sealed class TrainingPreprocessorTests
{
    public static TheoryData<int> Cases()
    {
        var data = new TheoryData<int>();
        for (var i = 0; i < Fixture.Value.Cases.Count; i++) data.Add(i);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Sample_WithTheReferenceDraws_ChoosesTorchvisionsBox(int index)
    {
        var fixture = Fixture.Value.Cases[index];
        var draws = new ReplayDraws(fixture.Draws);

        var box = RandomResizedCrop.Sample(fixture.Width, fixture.Height, fixture.Ranges, draws);

        Assert.Equal(fixture.Box, box);
        draws.AssertConsumed();
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Preprocess_WithTheReferenceDraws_EqualsPillowsPixels(int index)
    {
        var fixture = Fixture.Value.Cases[index];
        var preprocessor = new TrainingPreprocessor(fixture.Size, fixture.Ranges);
        var levels = new byte[preprocessor.ValuesPerImage];

        var result = preprocessor.Preprocess(File.ReadAllBytes(fixture.Path), new ReplayDraws(fixture.Draws), levels, out var box);

        Assert.True(result.Succeeded, result.Rejection?.Message);
        Assert.Equal(fixture.Box, box);
        var differing = levels.Zip(fixture.Levels).Count(pair => pair.First != pair.Second);
        Assert.True(differing == 0, $"{fixture.File} seed {fixture.Seed}: {differing} of {levels.Length} levels differ from Pillow's");
    }

    [Fact]
    public void Preprocess_ToFloats_MapsTheLevelsAsToTensorAndNormalize()
    {
        var fixture = Fixture.Value.Cases[0];
        var preprocessor = new TrainingPreprocessor(fixture.Size, fixture.Ranges);
        var values = new float[preprocessor.ValuesPerImage];

        var result = preprocessor.Preprocess(File.ReadAllBytes(fixture.Path), new ReplayDraws(fixture.Draws), values);

        Assert.True(result.Succeeded);
        Assert.Equal(fixture.Levels.Select(ImagePreprocessor.LevelToValue), values);
    }

    [Fact]
    public void Sample_WhenTheFirstAttemptFits_TakesItsSizeAndOffsets()
    {
        // get_params: 0.81f of 100 x 100 at aspect exp(0) = 1: sqrt(8100.0002) rounds to 90 both ways; then randint(0, 11) twice.
        var draws = new ReplayDraws([("uniform", 0.81), ("uniform", 0.0), ("integer", 3), ("integer", 7)]);

        var box = RandomResizedCrop.Sample(100, 100, CropRanges.Augmented, draws);

        Assert.Equal(new CropBox(Top: 3, Left: 7, Height: 90, Width: 90), box);
        draws.AssertConsumed();
    }

    [Theory]
    [InlineData(300, 40, 0, 123, 40, 53)]   // wider than 4/3: full height, width round(40 * 4/3) = 53, centred ((300 - 53) // 2)
    [InlineData(40, 300, 123, 0, 53, 40)]   // taller than 3/4: full width, height round(40 / 0.75) = 53
    [InlineData(120, 100, 0, 0, 100, 120)]  // within the ratio range: the whole image
    public void Sample_WhenNoAttemptFits_TakesTheCentreFallback(int width, int height, int top, int left, int boxHeight, int boxWidth)
    {
        // Scale 1 at aspect 1: a 110 x 110 box (sqrt(12000) = 109.5), larger than these images in one side, ten times over.
        var draws = new ReplayDraws(Enumerable.Repeat<(string, double)[]>([("uniform", 1.0), ("uniform", 0.0)], RandomResizedCrop.Attempts)
            .SelectMany(attempt => attempt).ToList());

        var box = RandomResizedCrop.Sample(width, height, CropRanges.Reference, draws);

        Assert.Equal(new CropBox(top, left, boxHeight, boxWidth), box);
        draws.AssertConsumed();
    }

    [Fact]
    public void Preprocess_OfBytesThatAreNoImage_IsRejectedWithoutDrawing()
    {
        var preprocessor = new TrainingPreprocessor(64, CropRanges.Reference);
        var draws = new ReplayDraws([]);

        var result = preprocessor.Preprocess("not an image at all"u8, draws, new byte[preprocessor.ValuesPerImage], out _);

        Assert.Equal(ImageRejectionReason.NotAnImage, result.Rejection?.Reason);
    }

    [Fact]
    public void Constructor_WithAnImpossibleScaleRange_NamesIt()
    {
        var error = Assert.Throws<ArgumentException>(() => new TrainingPreprocessor(64, new CropRanges(ScaleMin: 0.9, ScaleMax: 0.5)));

        Assert.Contains("scale range", error.Message);
    }

    private static readonly Lazy<CropFixture> Fixture = new(() => CropFixture.Read(TestFixtures.Folder("train-crop")));

    /// <summary>Hands out recorded draws in order and fails on a draw of the wrong kind or one too many.</summary>
    internal sealed class ReplayDraws(IReadOnlyList<(string Kind, double Value)> draws) : ICropDraws
    {
        private int next;

        public float Uniform(float low, float high)
        {
            var value = (float)Next("uniform");
            Assert.InRange(value, Math.Min(low, high), high);
            return value;
        }

        public int Integer(int exclusiveMax)
        {
            var value = (int)Next("integer");
            Assert.InRange(value, 0, exclusiveMax - 1);
            return value;
        }

        public void AssertConsumed() => Assert.True(next == draws.Count, $"{draws.Count - next} recorded draws were not used");

        private double Next(string kind)
        {
            Assert.True(next < draws.Count, $"a {kind} draw beyond the {draws.Count} recorded");
            var (recorded, value) = draws[next++];
            Assert.Equal(recorded, kind);
            return value;
        }
    }

    internal sealed record CropCase(string File, string Path, int Seed, int Size, CropRanges Ranges, int Width, int Height,
        IReadOnlyList<(string Kind, double Value)> Draws, CropBox Box, byte[] Levels);

    internal sealed record CropFixture(IReadOnlyList<CropCase> Cases)
    {
        public static CropFixture Read(string folder)
        {
            using var document = JsonDocument.Parse(File.ReadAllText(System.IO.Path.Combine(folder, "expected.json")));
            var preprocess = TestFixtures.Folder("preprocess");
            var cases = document.RootElement.GetProperty("cases").EnumerateArray().Select(c =>
            {
                var file = c.GetProperty("file").GetString()!;
                var local = System.IO.Path.Combine(folder, file);
                var scale = c.GetProperty("scale");
                var box = c.GetProperty("box");
                return new CropCase(file, File.Exists(local) ? local : System.IO.Path.Combine(preprocess, file), c.GetProperty("seed").GetInt32(),
                    c.GetProperty("size").GetInt32(), new CropRanges(scale[0].GetDouble(), scale[1].GetDouble()),
                    c.GetProperty("width").GetInt32(), c.GetProperty("height").GetInt32(),
                    c.GetProperty("draws").EnumerateArray().Select(d => (d.GetProperty("kind").GetString()!, d.GetProperty("value").GetDouble())).ToList(),
                    new CropBox(box.GetProperty("top").GetInt32(), box.GetProperty("left").GetInt32(), box.GetProperty("height").GetInt32(), box.GetProperty("width").GetInt32()),
                    Convert.FromBase64String(c.GetProperty("levels").GetString()!));
            }).ToList();
            return new CropFixture(cases);
        }
    }
}
