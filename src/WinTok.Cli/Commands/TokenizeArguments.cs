using System.CommandLine;
using WinTok.Data.Corpus;
using WinTok.Inference;
using WinTok.Jobs.Checkpoints;
using WinTok.Jobs.Tokenize;
using WinTok.Model;

namespace WinTok.Cli.Commands;

/// <summary>
/// The arguments <c>wintok tokenize</c> and <c>wintok submit tokenize</c> share: what to tokenize, where to, with which
/// checkpoint, and how this process runs the model. Builds the <see cref="TokenizeRequest"/> and the settings the
/// options override.
/// </summary>
internal sealed class TokenizeArguments
{
    private static readonly Dictionary<string, CorpusKind> Kinds = new(StringComparer.OrdinalIgnoreCase)
    {
        ["folder"] = CorpusKind.Folder,
        ["imagefolder"] = CorpusKind.ImageFolder,
        ["webdataset"] = CorpusKind.WebDataset,
    };

    public Argument<string> Input { get; } = new("INPUT")
    {
        Description = "The image corpus: a local folder, az://container/prefix or a blob URI.",
    };

    public Argument<string> Output { get; } = new("OUTPUT")
    {
        Description = "Where the token dataset goes (shards, errors, _manifest.json): a local folder or a blob location.",
    };

    public Option<string> Checkpoint { get; } = new("--checkpoint")
    {
        Description = "Tokenizer checkpoint: an official .pth or a .safetensors file, local or in blob storage.",
        Required = true,
    };

    public ModelArguments Model { get; } = new();

    public Option<string?> Kind { get; } = new Option<string?>("--kind")
    {
        Description = "Corpus layout (default: detected; tars mean webdataset, only class folders mean imagefolder).",
    }.AcceptOnlyFromAmong([.. Kinds.Keys]);

    public Option<int> FilesPerPartition { get; } = new("--files-per-partition")
    {
        Description = "Images (or tars) per partition, i.e. per shard and per queue message.",
        DefaultValueFactory = _ => CorpusPlanner.DefaultFilesPerPartition,
    };

    public Option<bool> SemanticTokens { get; } = new("--semantic-tokens")
    {
        Description = "Also store the semantic tokens and their pooled embedding in every row.",
    };

    public Option<bool> KeepDamagedImages { get; } = new("--keep-damaged-images")
    {
        Description = "Tokenize damaged JPEGs whose every row still decodes (a corrupt byte that libjpeg reports only "
            + "after the last row), as Pillow with LOAD_TRUNCATED_IMAGES does; by default they are failures, as in the reference.",
    };

    public Option<bool> Verbose { get; } = new("--verbose")
    {
        Description = "Log progress of every stage (information level) to stderr.",
    };

    public void AddTo(Command command)
    {
        command.Arguments.Add(Input);
        command.Arguments.Add(Output);
        foreach (var option in new Option[] { Checkpoint, Kind, FilesPerPartition, SemanticTokens, KeepDamagedImages, Verbose })
        {
            command.Options.Add(option);
        }
        Model.AddTo(command);
    }

    /// <summary>The request; reading <c>--encoder-config</c> may fail with a message for the user.</summary>
    public TokenizeRequest ToRequest(ParseResult parse)
    {
        var kind = parse.GetValue(Kind);
        return new TokenizeRequest(
            parse.GetValue(Input)!,
            parse.GetValue(Output)!,
            parse.GetValue(Checkpoint)!,
            Model.ToChoice(parse),
            kind is null ? null : Kinds[kind],
            parse.GetValue(FilesPerPartition),
            parse.GetValue(SemanticTokens),
            KeepDamagedImages: parse.GetValue(KeepDamagedImages));
    }

    /// <summary>
    /// What can be told wrong before any service starts: a missing input folder or checkpoint file, a blob location
    /// without a blob connection, impossible numbers. Null when nothing is wrong.
    /// </summary>
    public static string? Problem(TokenizeRequest request, string? blobConnection)
    {
        if (request.FilesPerPartition < 1) return $"--files-per-partition must be at least 1, got {request.FilesPerPartition}";
        foreach (var (name, location) in new[] { ("INPUT", request.Input), ("OUTPUT", request.Output), ("--checkpoint", request.Checkpoint) })
        {
            if (FileStores.IsBlobLocation(location) && string.IsNullOrEmpty(blobConnection))
                return $"{name} {location} is in blob storage, but WINTOK_BLOB_CONNECTION is not set";
        }
        if (!FileStores.IsBlobLocation(request.Input) && !Directory.Exists(request.Input))
            return $"input folder {request.Input} does not exist";
        if (!FileStores.IsBlobLocation(request.Checkpoint) && !File.Exists(request.Checkpoint))
            return $"checkpoint {request.Checkpoint} does not exist";
        return null;
    }
}
