using WinTok.Checkpoints;
using WinTok.Inference;
using WinTok.Jobs.Checkpoints;
using WinTok.Model;

namespace WinTok.Worker.Checkpoints;

/// <summary>The control plane's view of a checkpoint (<see cref="ICheckpointInspector"/>), read with the model project's readers.</summary>
internal sealed class CheckpointInspector : ICheckpointInspector
{
    public CheckpointFacts Inspect(string localPath, ModelChoice model)
    {
        // TODO(#8): a header-only args read, so a 3.4 GB checkpoint is not read whole to learn its configuration.
        using var file = CheckpointFile.Read(localPath);
        var options = model.ToLoadOptions();
        var kind = options.Kind ?? ModelKinds.WinTok;
        var config = ReferenceArgs.ToConfig(file.Args, TokenizerCheckpoints.EncoderShapeFrom(options));
        return new CheckpointFacts(kind, config.Encoder.ImageSize, System.Text.Json.JsonSerializer.Serialize(ReferenceArgs.FromConfig(config)));
    }
}

/// <summary>The model project's load options for a job's <see cref="ModelChoice"/>.</summary>
internal static class ModelChoiceExtensions
{
    public static ModelLoadOptions ToLoadOptions(this ModelChoice choice) => new(choice.Kind, choice.EncoderPreset, choice.EncoderConfig);
}
