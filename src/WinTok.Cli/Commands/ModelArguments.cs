using System.CommandLine;
using System.Globalization;
using WinTok.Inference;
using WinTok.Jobs.Checkpoints;
using WinTok.Model;

namespace WinTok.Cli.Commands;

/// <summary>
/// The options of every verb that loads a checkpoint: which architecture, the encoder shape when a checkpoint's args do
/// not say it, and how this process runs the model (device, batch size).
/// </summary>
internal sealed class ModelArguments
{
    public Option<string?> Kind { get; } = new Option<string?>("--model")
    {
        Description = $"Model architecture: {string.Join(", ", ModelKinds.All)} (default: detected from the checkpoint).",
    }.AcceptOnlyFromAmong([.. ModelKinds.All]);

    public Option<string?> Encoder { get; } = new Option<string?>("--encoder")
    {
        Description = "Encoder preset when the checkpoint's args do not name the tower: WinTok " + string.Join(", ", EncoderShape.Presets.Keys)
            + "; UniTok " + string.Join(", ", ViTaminShape.Presets.Keys) + ".",
    }.AcceptOnlyFromAmong([.. EncoderShape.Presets.Keys, .. ViTaminShape.Presets.Keys]);

    public Option<FileInfo?> EncoderConfig { get; } = new("--encoder-config")
    {
        Description = "Encoder shape as JSON when the checkpoint's args.model names no preset: WinTok, the HF SigLIP vision config.json "
            + "args.model names; UniTok, a ViTamin shape (stem_width, stage_widths, stage_depths, vit_dim, vit_depth, vit_heads[, mlp_ratio]).",
    };

    public Option<int?> BatchSize { get; } = new("--batch-size")
    {
        Description = "Images per model call (default: 128 on a GPU, 8 on the CPU).",
    };

    public Option<string?> Device { get; } = new Option<string?>("--device")
    {
        Description = "auto (CUDA when a GPU is visible), cpu or cuda.",
    }.AcceptOnlyFromAmong("auto", "cpu", "cuda");

    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { Kind, Encoder, EncoderConfig, BatchSize, Device }) command.Options.Add(option);
    }

    /// <summary>The user's choice, with the encoder config file's contents (stored in the job spec, so every worker reads the same).</summary>
    public ModelChoice ToChoice(ParseResult parse)
    {
        if (parse.GetValue(Encoder) is not null && parse.GetValue(EncoderConfig) is not null)
            throw new ArgumentException("give --encoder or --encoder-config, not both");
        string? config = null;
        if (parse.GetValue(EncoderConfig) is { } file)
        {
            if (!file.Exists) throw new FileNotFoundException($"encoder config {file.FullName} does not exist", file.FullName);
            config = File.ReadAllText(file.FullName);
            // Fail now, with the file's name, rather than on every worker.
            try
            {
                TokenizerCheckpoints.CheckEncoderConfig(config, parse.GetValue(Kind));
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"encoder config {file.FullName}: {e.Message}", e);
            }
        }
        return new ModelChoice(parse.GetValue(Kind), parse.GetValue(Encoder), config);
    }

    /// <summary>Settings the model options fix for this process (<c>Model:*</c>), only those given.</summary>
    public Dictionary<string, string?> Settings(ParseResult parse)
    {
        var settings = new Dictionary<string, string?>();
        if (parse.GetValue(Device) is { } device) settings["Model:Device"] = device;
        if (parse.GetValue(BatchSize) is { } batch) settings["Model:BatchSize"] = batch.ToString(CultureInfo.InvariantCulture);
        return settings;
    }
}
