using System.CommandLine;

namespace WinTok.Benchmarks;

/// <summary>
/// `wintok-bench preprocess`: decode + preprocess images/s per core, single-threaded and on N threads, on the
/// fixtures' 2560x1600 photos and on 500x375 JPEGs made from them. Prints a Markdown table for docs/benchmarks.md.
/// </summary>
internal static class BenchPreprocessCommand
{
    public static Command Create()
    {
        var fixtures = new Option<DirectoryInfo>("--fixtures")
        {
            Description = "Folder of photos (default: tests/fixtures/preprocess of this repository).",
            DefaultValueFactory = _ => new DirectoryInfo(DefaultFixtureFolder()),
        };
        var threads = new Option<int>("--threads")
        {
            Description = "Threads of the parallel run (default: the processor count).",
            DefaultValueFactory = _ => Environment.ProcessorCount,
        };
        var seconds = new Option<double>("--seconds")
        {
            Description = "Length of each timed run in seconds.",
            DefaultValueFactory = _ => 10,
        };
        var reduced = new Option<bool>("--reduced-scale")
        {
            Description = "Also measure reduced-scale JPEG decoding (not bit-exact; see docs/preprocessing.md).",
        };
        var command = new Command("preprocess", "Decode + preprocess throughput (images/s per core).")
        {
            fixtures, threads, seconds, reduced,
        };
        command.SetAction((parseResult, cancellationToken) =>
        {
            var settings = new PreprocessBenchmark.Settings(
                parseResult.GetValue(fixtures)!.FullName,
                Math.Max(1, parseResult.GetValue(threads)),
                TimeSpan.FromSeconds(parseResult.GetValue(seconds)),
                parseResult.GetValue(reduced));
            Console.WriteLine($"Fixtures: {settings.FixtureFolder}; {Environment.ProcessorCount} processors; {settings.Duration.TotalSeconds:F0}s per run");
            Console.WriteLine();
            Console.WriteLine("| workload | mode | threads | images/s (wall) | images/s per thread (wall) | images per CPU-second |");
            Console.WriteLine("|---|---|---:|---:|---:|---:|");
            PreprocessBenchmark.Run(settings, m => Console.WriteLine(
                $"| {m.Workload} | {m.Mode} | {m.Threads} | {m.ImagesPerSecond:F1} | {m.ImagesPerSecondPerThread:F1} | {m.ImagesPerCpuSecond:F1} |"),
                cancellationToken);
            return Task.FromResult(0);
        });
        return command;
    }

    private static string DefaultFixtureFolder()
    {
        var directory = new DirectoryInfo(Environment.CurrentDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "WinTok.sln")))
        {
            directory = directory.Parent;
        }
        return Path.GetFullPath(Path.Combine(directory?.FullName ?? Environment.CurrentDirectory, "tests", "fixtures", "preprocess"));
    }
}
