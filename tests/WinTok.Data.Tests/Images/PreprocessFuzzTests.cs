using System.Diagnostics;
using SkiaSharp;
using WinTok.Data.Images;

namespace WinTok.Data.Tests.Images;

/// <summary>
/// Thousands of damaged real images through the preprocessor: every one must come back as pixels or as a typed
/// rejection. An exception fails the test; a native crash would take the test process down and fail the run.
/// </summary>
public sealed class PreprocessFuzzTests
{
    private const int Seed = 20261122;
    private const int Iterations = 4000;
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(8);

    [Fact]
    public void Preprocess_WhenFedThousandsOfMutatedImages_NeverThrows()
    {
        // Small images, a small output and a small pixel limit (overwritten header fields claim large sizes) so that
        // thousands of decodes fit in seconds, even in Debug builds; every codec path we decode is represented.
        byte[][] seeds =
        [
            File.ReadAllBytes(Path.Combine(PreprocessFixtures.Folder, "variant_tiny_64x40.jpg")),
            TestImages.Encode("autumn_2560x1600.jpg", 120, 75, SKEncodedImageFormat.Jpeg, 85),
            TestImages.Encode("kite_2560x1600.jpg", 96, 60, SKEncodedImageFormat.Png),
            TestImages.Encode("cups_2560x1600.jpg", 96, 60, SKEncodedImageFormat.Png, withAlpha: true),
            TestImages.Encode("konqui_2560x1600.png", 96, 60, SKEncodedImageFormat.Webp, 80),
            TestImages.Encode("honeywave_1080x1920.jpg", 60, 96, SKEncodedImageFormat.Webp, 100, withAlpha: true),
            TestImages.Bmp("kite_2560x1600.jpg", 90, 56),
        ];
        var preprocessor = new ImagePreprocessor(new PreprocessOptions { ImageSize = 32, MaxPixels = 200_000 });
        var levels = new byte[preprocessor.ValuesPerImage];
        var random = new Random(Seed);
        var outcomes = new Dictionary<string, int>();
        var clock = Stopwatch.StartNew();

        var runs = 0;
        for (; runs < Iterations && clock.Elapsed < Budget; runs++)
        {
            var input = Mutate(seeds, random, out var mutation);
            PreprocessResult result;
            try
            {
                result = preprocessor.Preprocess(input, levels);
            }
            catch (Exception ex)
            {
                Assert.Fail($"Run {runs} ({mutation}, seed {Seed}) threw {ex}");
                return;
            }
            var outcome = result.Rejection?.Reason.ToString() ?? "Succeeded";
            outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
            Assert.True(result.Succeeded || !string.IsNullOrWhiteSpace(result.Rejection!.Message));
        }

        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{runs} mutated inputs in {clock.Elapsed.TotalSeconds:F1}s: {string.Join(", ", outcomes.OrderBy(o => o.Key).Select(o => $"{o.Key} {o.Value}"))}");
        Assert.True(runs >= 1000, $"Only {runs} inputs fitted in {Budget.TotalSeconds}s");
        Assert.True(outcomes.Count >= 3, "The mutations hardly exercised the rejection paths");
    }

    /// <summary>One damaged copy of a seed image: bit flips, truncation, splices, header field overwrites, or insertions.</summary>
    private static byte[] Mutate(byte[][] seeds, Random random, out string mutation)
    {
        var source = seeds[random.Next(seeds.Length)];
        var bytes = (byte[])source.Clone();
        switch (random.Next(6))
        {
            case 0:
                var flips = 1 + random.Next(16);
                for (var i = 0; i < flips; i++)
                {
                    bytes[random.Next(bytes.Length)] ^= (byte)(1 << random.Next(8));
                }
                mutation = $"{flips} bit flips";
                return bytes;
            case 1:
                var length = random.Next(bytes.Length);
                mutation = $"truncated to {length} of {bytes.Length} bytes";
                return bytes[..length];
            case 2:
                // The head of one image followed by the tail of another: plausible header, wrong data.
                var other = seeds[random.Next(seeds.Length)];
                var cut = random.Next(1, Math.Min(bytes.Length, 512));
                var from = random.Next(other.Length);
                mutation = $"first {cut} bytes spliced onto a tail from byte {from}";
                return [.. bytes[..cut], .. other[from..]];
            case 3:
                // Overwrite a 2- or 4-byte field near the start, where dimensions, chunk lengths and tables live.
                var at = random.Next(Math.Min(bytes.Length - 4, 256));
                var width = random.Next(2) == 0 ? 2 : 4;
                for (var i = 0; i < width; i++)
                {
                    bytes[at + i] = (byte)random.Next(256);
                }
                mutation = $"{width}-byte field at {at} overwritten";
                return bytes;
            case 4:
                var start = random.Next(bytes.Length);
                var run = Math.Min(1 + random.Next(64), bytes.Length - start);
                bytes.AsSpan(start, run).Fill(random.Next(2) == 0 ? (byte)0 : (byte)0xFF);
                mutation = $"{run} bytes at {start} filled";
                return bytes;
            default:
                var position = random.Next(bytes.Length);
                var insert = new byte[1 + random.Next(32)];
                random.NextBytes(insert);
                mutation = $"{insert.Length} random bytes inserted at {position}";
                return [.. bytes[..position], .. insert, .. bytes[position..]];
        }
    }
}
