import { Type } from 'class-transformer';
import {
  IsDefined, IsInt, IsObject, IsOptional, IsString, Matches, Max, MaxLength, Min, ValidateIf, ValidateNested,
} from 'class-validator';
import { AVATAR_ID_MESSAGE, ExclusiveWith, AVATAR_ID_PATTERN, MEDIA_REF_MESSAGE, MEDIA_REF_PATTERN } from './common';

export class LipsyncOptions {
  /** Frames per UNet batch; an export with a fixed batch size pads the last batch. */
  @IsOptional() @IsInt() @Min(1) @Max(64)
  batchSize?: number;

  /** Output height in pixels (width follows the source aspect ratio); the source size when absent. */
  @IsOptional() @IsInt() @Min(64) @Max(2160)
  outputHeight?: number;

  /** x264 constant rate factor. */
  @IsOptional() @IsInt() @Min(0) @Max(51)
  crf?: number;
}

/** Input of `lipsync`: an avatar (prepared, or a source video prepared inline) and speech audio. */
export class LipsyncInput {
  @ValidateIf((o: LipsyncInput) => o.sourceVideo === undefined)
  @IsDefined({ message: 'give avatarId or sourceVideo' })
  @IsString() @Matches(AVATAR_ID_PATTERN, { message: AVATAR_ID_MESSAGE })
  avatarId?: string;

  @ExclusiveWith('avatarId')
  @IsOptional() @IsString() @MaxLength(2048) @Matches(MEDIA_REF_PATTERN, { message: MEDIA_REF_MESSAGE })
  sourceVideo?: string;

  /** Speech: http(s) URL or storage key. */
  @IsString() @MaxLength(2048) @Matches(MEDIA_REF_PATTERN, { message: MEDIA_REF_MESSAGE })
  audio!: string;

  @IsOptional() @IsObject() @ValidateNested() @Type(() => LipsyncOptions)
  options?: LipsyncOptions;
}

export interface LipsyncResult {
  videoKey: string;
  durationSec: number;
  frameCount: number;
}
