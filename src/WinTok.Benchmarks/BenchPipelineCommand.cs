using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using WinTok.Data.Corpus;
using WinTok.Data.Images;
using WinTok.Data.Shards;
using WinTok.Inference;
using WinTok.Model;
using WinTok.Worker.Tokenize;

namespace WinTok.Benchmarks;

/// <summary>
/// `wintok-bench pipeline`: end to end, JPEG files on local disk to Parquet shards on local disk, through the worker's
/// own partition pipeline (read, decode on CPU threads, model batches on the engine thread, shard writer), next to the
/// model-only rate of the same engine in the same process. The ratio says whether the GPU waits for data.
/// </summary>
internal static class BenchPipelineCommand
{
    public static Command Create()
    {
        var photos = new Option<string>("--photos") { Description = "Folder of large JPEG photos to cut ImageNet-sized images from.", Required = true };
        var images = new Option<int>("--images") { DefaultValueFactory = _ => 4096 };
        var preset = new Option<string>("--preset") { DefaultValueFactory = _ => "so400m-16-256" };
        var semanticTokens = new Option<int>("--semantic-tokens") { DefaultValueFactory = _ => 32 };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 128 };
        var filesPerPartition = new Option<int>("--files-per-partition") { DefaultValueFactory = _ => 1024 };
        var concurrent = new Option<int>("--concurrent-partitions") { Description = "Partitions in flight, as a worker with that prefetch runs them.", DefaultValueFactory = _ => 2 };
        var decodeThreads = new Option<int>("--decode-threads") { Description = "Per partition; 0 = cores - 1.", DefaultValueFactory = _ => 0 };
        var command = new Command("pipeline", "End-to-end JPEG-to-shard throughput beside model-only throughput.")
        {
            photos, images, preset, semanticTokens, batch, filesPerPartition, concurrent, decodeThreads,
        };
        command.SetAction((parse, cancellationToken) => RunAsync(parse.GetValue(photos)!, parse.GetValue(images), parse.GetValue(preset)!,
            parse.GetValue(semanticTokens), parse.GetValue(batch), parse.GetValue(filesPerPartition), parse.GetValue(concurrent),
            parse.GetValue(decodeThreads), cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(string photoFolder, int count, string presetName, int semanticTokens, int batch,
        int filesPerPartition, int concurrent, int decodeThreads, CancellationToken cancellationToken)
    {
        var shape = EncoderShape.Presets.TryGetValue(presetName, out var preset) ? preset
            : throw new ArgumentException($"Unknown preset '{presetName}'; choose one of {string.Join(", ", EncoderShape.Presets.Keys)}");
        if (!Directory.Exists(photoFolder)) throw new DirectoryNotFoundException($"No photo folder {photoFolder}");
        var work = Directory.CreateTempSubdirectory("wintok-bench-");
        try
        {
            var corpus = Directory.CreateDirectory(Path.Combine(work.FullName, "images")).FullName;
            var clock = Stopwatch.StartNew();
            var bytes = MakeCorpus(photoFolder, corpus, count);
            Console.WriteLine($"WINTOK corpus images={count} mean_jpeg_bytes={bytes / count} made_in_s={clock.Elapsed.TotalSeconds:F1}");

            using var engine = new ModelThread(new ModelThreadSettings(BatchSize: batch), NullLogger<ModelThread>.Instance);
            var source = new ModelSource("random", "none", ModelLoadOptions.Default);
            var served = await engine.ServeAsync(source, new WinTokModel(WinTokConfig.ForPreset(shape, semanticTokens)), cancellationToken);
            var preprocessor = new ImagePreprocessor(new PreprocessOptions { ImageSize = shape.ImageSize });
            var threads = decodeThreads > 0 ? decodeThreads : Math.Max(1, Environment.ProcessorCount - 1);

            var modelOnly = await ModelOnlyAsync(engine, source, preprocessor, corpus, batch, cancellationToken);
            Report("model_only", modelOnly, batch, semanticTokens, presetName, served.Device);

            var input = new LocalFileStore(corpus);
            var output = new LocalFileStore(Directory.CreateDirectory(Path.Combine(work.FullName, "tokens")).FullName);
            var partitions = await CorpusPlanner.PlanAsync(input, CorpusKind.Folder, filesPerPartition, cancellationToken);
            var d = served.Description;
            var metadata = new ShardMetadata("bench", "random", "none", d.Kind, d.ArgsJson, preprocessor.Description,
                new TokenLayout(d.NumCodebooks, d.CodebookSize, d.PixelTokens, $"{d.GridSize}x{d.GridSize}"), DateTimeOffset.UtcNow);
            var tokenizer = new PartitionTokenizer(engine);
            long rows = 0;
            using var slots = new SemaphoreSlim(concurrent);
            clock.Restart();
            await Task.WhenAll(partitions.Select(async partition =>
            {
                await slots.WaitAsync(cancellationToken);
                try
                {
                    var writer = new ShardWriter(output, partition.Index, metadata);
                    var job = new TokenizeRun(partition, input, preprocessor, source, false, batch, threads);
                    await tokenizer.RunAsync(job, writer, null, cancellationToken);
                    var shard = await writer.CommitAsync(cancellationToken);
                    Interlocked.Add(ref rows, shard.Rows);
                }
                finally
                {
                    slots.Release();
                }
            }));
            var endToEnd = rows / clock.Elapsed.TotalSeconds;
            Report("end_to_end", endToEnd, batch, semanticTokens, presetName, served.Device);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"WINTOK pipeline rows={rows} partitions={partitions.Count} decode_threads={threads} concurrent_partitions={concurrent} ratio_to_model_only={endToEnd / modelOnly:F3}"));
            return rows == count ? 0 : 1;
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    /// <summary>The engine alone on already decoded batches: upload of levels, model, copy of tokens back.</summary>
    private static async Task<double> ModelOnlyAsync(ModelThread engine, ModelSource source, ImagePreprocessor preprocessor, string corpus,
        int batch, CancellationToken cancellationToken)
    {
        var levels = new byte[batch * preprocessor.ValuesPerImage];
        var files = Directory.EnumerateFiles(corpus).Order(StringComparer.Ordinal).Take(batch).ToList();
        for (var i = 0; i < batch; i++)
            preprocessor.Preprocess(File.ReadAllBytes(files[i % files.Count]), levels.AsSpan(i * preprocessor.ValuesPerImage, preprocessor.ValuesPerImage));
        await engine.TokenizeAsync(source, levels, batch, false, cancellationToken); // warm-up
        const int iterations = 10;
        var clock = Stopwatch.StartNew();
        var inFlight = new List<Task>();
        for (var i = 0; i < iterations; i++) inFlight.Add(engine.TokenizeAsync(source, levels, batch, false, cancellationToken));
        await Task.WhenAll(inFlight);
        return iterations * batch / clock.Elapsed.TotalSeconds;
    }

    /// <summary>Distinct ImageNet-sized JPEGs (500x375, quality 90) cut from the photos at varying scales and places.</summary>
    private static long MakeCorpus(string photoFolder, string corpus, int count)
    {
        var photos = Directory.EnumerateFiles(photoFolder, "*.jpg").Order(StringComparer.Ordinal).Select(File.ReadAllBytes).ToArray();
        if (photos.Length == 0) throw new ArgumentException($"No .jpg photos in {photoFolder}");
        long total = 0;
        Parallel.For(0, count, i =>
        {
            var random = new Random(i);
            var jpeg = PreprocessBenchmark.ImageNetSized(photos[i % photos.Length], 500, 375, 90,
                0.3 + 0.7 * random.NextDouble(), random.NextDouble(), random.NextDouble());
            File.WriteAllBytes(Path.Combine(corpus, $"img-{i:D6}.jpg"), jpeg);
            Interlocked.Add(ref total, jpeg.Length);
        });
        return total;
    }

    private static void Report(string op, double imagesPerSecond, int batch, int semanticTokens, string preset, string device) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"WINTOK op={op} preset={preset} semantic_tokens={semanticTokens} batch={batch} device={device} img_per_s={imagesPerSecond:F1}"));
}
