using System.CommandLine;
using WinTok.Jobs.Evaluate;

namespace WinTok.Cli.Commands;

/// <summary>The arguments <c>wintok evaluate</c> and <c>wintok submit evaluate</c> share; builds the <see cref="EvaluateRequest"/>.</summary>
internal sealed class EvaluateArguments
{
    public Argument<string> Checkpoint { get; } = new("CHECKPOINT")
    {
        Description = "The tokenizer checkpoint to evaluate: an official .pth or a .safetensors file, local or in blob storage.",
    };

    public Argument<string> Dataset { get; } = new("DATASET")
    {
        Description = "The images: a folder, an ImageFolder (one folder per class: zero-shot labels) or WebDataset tars.",
    };

    public Option<string> Output { get; } = new("--output")
    {
        Description = "Where metrics.json, per_image/*.parquet and grid.png go (a new or empty folder, or a blob location).",
        Required = true,
    };

    public Option<string> Metrics { get; } = new("--metrics")
    {
        Description = $"Comma-separated: {string.Join(", ", EvaluationMetrics.All)}.",
        DefaultValueFactory = _ => string.Join(",", EvaluationMetrics.All),
    };

    public Option<string?> Weights { get; } = new("--weights")
    {
        Description = "Folder of the metric networks' weight files (rfid, lpips); docs/evaluation.md lists them.",
    };

    public Option<string?> TextTower { get; } = new("--text-tower")
    {
        Description = "Zero-shot of a WinTok checkpoint: the HF SigLIP2 folder (config.json, model.safetensors, tokenizer files). "
            + "A UniTok checkpoint brings its own CLIP text tower.",
    };

    public Option<string> Precision { get; } = new Option<string>("--precision")
    {
        Description = "fp32 (as the reference evaluates) or bf16 (the serving path, faster; numbers move slightly).",
        DefaultValueFactory = _ => EvaluationPrecision.Float32,
    }.AcceptOnlyFromAmong([.. EvaluationPrecision.All]);

    public Option<string?> DatasetName { get; } = new("--dataset-name")
    {
        Description = "The name results are grouped by (default: the dataset folder's name).",
    };

    public Option<int> FilesPerPartition { get; } = new("--files-per-partition")
    {
        Description = "Images per partition (per queue message).",
        DefaultValueFactory = _ => 1000,
    };

    public ModelArguments Model { get; } = new();

    public Option<bool> Verbose { get; } = new("--verbose") { Description = "Log every stage (information level) to stderr." };

    public void AddTo(Command command)
    {
        command.Arguments.Add(Checkpoint);
        command.Arguments.Add(Dataset);
        foreach (var option in new Option[] { Output, Metrics, Weights, TextTower, Precision, DatasetName, FilesPerPartition, Verbose })
            command.Options.Add(option);
        Model.AddTo(command);
    }

    /// <summary>The request; a bad metric list or encoder option fails with a message for the user.</summary>
    public EvaluateRequest ToRequest(ParseResult parse) => new(
        parse.GetValue(Checkpoint)!,
        parse.GetValue(Dataset)!,
        parse.GetValue(Output)!,
        Model.ToChoice(parse),
        EvaluationMetrics.Parse(parse.GetValue(Metrics)!),
        parse.GetValue(Weights) is { } weights ? Path.GetFullPath(weights) : null,
        parse.GetValue(TextTower) is { } tower ? Path.GetFullPath(tower) : null,
        parse.GetValue(Precision)!,
        parse.GetValue(DatasetName),
        FilesPerPartition: parse.GetValue(FilesPerPartition));
}
