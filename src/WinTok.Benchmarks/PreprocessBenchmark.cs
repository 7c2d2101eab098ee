using System.Diagnostics;
using SkiaSharp;
using WinTok.Data.Images;

namespace WinTok.Benchmarks;

/// <summary>
/// Decode + preprocess throughput (images/s per core) on real photos, for <c>wintok-bench preprocess</c> and
/// docs/benchmarks.md: the fixtures' 2560x1600 JPEGs as they are, and ImageNet-sized JPEGs (500x375, quality 90)
/// made from them at run time.
/// </summary>
internal static class PreprocessBenchmark
{
    /// <summary>What to measure.</summary>
    /// <param name="FixtureFolder">A folder of photos; its JPEGs of at least 2560x1600 are the workload.</param>
    /// <param name="Threads">Thread count of the parallel run (the single-thread run always happens too).</param>
    /// <param name="Duration">How long each run lasts, after a warm-up of a quarter of it.</param>
    /// <param name="ReducedScaleJpegDecode">Also measure the reduced-scale JPEG decoding mode.</param>
    public sealed record Settings(string FixtureFolder, int Threads, TimeSpan Duration, bool ReducedScaleJpegDecode);

    /// <summary>One run's figures.</summary>
    /// <param name="Workload">Which images, e.g. "2560x1600 JPEG (3 photos)".</param>
    /// <param name="Mode">"exact" or "reduced-scale".</param>
    /// <param name="Threads">Threads decoding at once.</param>
    /// <param name="Images">Images preprocessed in the timed window.</param>
    /// <param name="Seconds">Length of the timed window.</param>
    /// <param name="CpuSeconds">Processor time this process used in the window (all threads).</param>
    public sealed record Measurement(string Workload, string Mode, int Threads, long Images, double Seconds, double CpuSeconds)
    {
        /// <summary>
        /// Images per second of processor time: the per-core figure that survives other processes sharing the
        /// cores, since time spent waiting for a core is not counted.
        /// </summary>
        public double ImagesPerCpuSecond => Images / CpuSeconds;

        public double ImagesPerSecond => Images / Seconds;

        public double ImagesPerSecondPerThread => ImagesPerSecond / Threads;
    }

    /// <summary>Runs every workload single-threaded and with <see cref="Settings.Threads"/> threads.</summary>
    public static IReadOnlyList<Measurement> Run(Settings settings, Action<Measurement>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var photos = LargeJpegs(settings.FixtureFolder);
        if (photos.Count == 0)
        {
            throw new InvalidOperationException($"No JPEG of at least 2560x1600 in {settings.FixtureFolder}");
        }
        var workloads = new List<(string Name, byte[][] Images)>
        {
            ($"2560x1600 JPEG ({photos.Count} photos)", [.. photos]),
            ($"500x375 JPEG q90 ({photos.Count} made from them)", [.. photos.Select(p => ImageNetSized(p, 500, 375, 90))]),
        };
        var modes = settings.ReducedScaleJpegDecode ? new[] { false, true } : [false];

        var measurements = new List<Measurement>();
        foreach (var (name, images) in workloads)
        {
            foreach (var reduced in modes)
            {
                var preprocessor = new ImagePreprocessor(new PreprocessOptions { ReducedScaleJpegDecode = reduced });
                foreach (var threads in new[] { 1, settings.Threads }.Distinct())
                {
                    Measure(preprocessor, images, threads, settings.Duration / 4, cancellationToken);
                    var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
                    var count = Measure(preprocessor, images, threads, settings.Duration, cancellationToken);
                    var cpu = Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;
                    var measurement = new Measurement(name, reduced ? "reduced-scale" : "exact", threads, count,
                        settings.Duration.TotalSeconds, cpu.TotalSeconds);
                    progress?.Invoke(measurement);
                    measurements.Add(measurement);
                }
            }
        }
        return measurements;
    }

    /// <summary>Images preprocessed by <paramref name="threads"/> threads in <paramref name="duration"/>, each into its own buffer.</summary>
    private static long Measure(ImagePreprocessor preprocessor, byte[][] images, int threads, TimeSpan duration, CancellationToken cancellationToken)
    {
        long total = 0;
        var clock = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            var levels = new byte[preprocessor.ValuesPerImage];
            long done = 0;
            for (var i = t; clock.Elapsed < duration && !cancellationToken.IsCancellationRequested; i++)
            {
                var result = preprocessor.Preprocess(images[i % images.Length], levels);
                if (!result.Succeeded)
                {
                    throw new InvalidOperationException($"Benchmark image {i % images.Length} was rejected: {result.Rejection}");
                }
                done++;
            }
            Interlocked.Add(ref total, done);
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());
        cancellationToken.ThrowIfCancellationRequested();
        return total;
    }

    private static List<byte[]> LargeJpegs(string folder) =>
        [.. Directory.EnumerateFiles(folder)
            .Order(StringComparer.Ordinal)
            .Select(File.ReadAllBytes)
            .Where(bytes =>
            {
                using var codec = SKCodec.Create(new MemoryStream(bytes));
                return codec is not null && codec.EncodedFormat == SKEncodedImageFormat.Jpeg
                    && Math.Max(codec.Info.Width, codec.Info.Height) >= 2560 && Math.Min(codec.Info.Width, codec.Info.Height) >= 1600;
            })];

    /// <summary>A centre crop of the photo to the target aspect, resized to <paramref name="width"/> x <paramref name="height"/> and re-encoded.</summary>
    private static byte[] ImageNetSized(byte[] photo, int width, int height, int quality) => ImageNetSized(photo, width, height, quality, 1.0, 0.5, 0.5);

    /// <summary>
    /// A crop of <paramref name="scale"/> of the largest crop with the target aspect, placed at (<paramref name="x"/>,
    /// <paramref name="y"/>) in [0, 1] of the free room, resized and re-encoded: many distinct ImageNet-like JPEGs from a few photos.
    /// </summary>
    public static byte[] ImageNetSized(byte[] photo, int width, int height, int quality, double scale, double x, double y)
    {
        using var original = SKBitmap.Decode(photo);
        var cropWidth = (int)(Math.Min(original.Width, original.Height * width / height) * scale);
        var cropHeight = cropWidth * height / width;
        var crop = SKRectI.Create((int)((original.Width - cropWidth) * x), (int)((original.Height - cropHeight) * y), cropWidth, cropHeight);
        using var cropped = new SKBitmap();
        original.ExtractSubset(cropped, crop);
        using var scaled = cropped.Resize(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque), new SKSamplingOptions(SKCubicResampler.CatmullRom));
        using var image = SKImage.FromBitmap(scaled);
        using var data = image.Encode(SKEncodedImageFormat.Jpeg, quality);
        return data.ToArray();
    }
}
