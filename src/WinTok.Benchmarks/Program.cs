using System.CommandLine;
using WinTok.Benchmarks;

// Before anything touches a GPU: torch's CUDA allocator reads its configuration once.
WinTok.Cuda.CudaAllocatorSettings.PreferExpandableSegments();

// `wintok-bench`: the benchmarks of docs/benchmarks.md. Each verb prints machine-readable lines (WINTOK ..., LAYER ...,
// CHECK ...) that the figures there are read from.
var root = new RootCommand("WinTok benchmarks: model, preprocessing and end-to-end throughput.")
{
    BenchTokenizeCommand.Create(),
    BenchEvaluateCommand.Create(),
    BenchTrainCommand.Create(),
    BenchTrainCurveCommand.Create(),
    BenchLayersCommand.Create(),
    BenchPipelineCommand.Create(),
    BenchPreprocessCommand.Create(),
};
return await root.Parse(args).InvokeAsync();
